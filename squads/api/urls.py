from django.urls import path

from portal.api.routers import Router
from squads.api import backstage, views

router = Router()
router.register("tribes", views.TribeViewSet, basename="tribe")
router.register("squads", views.SquadViewSet, basename="squad")
router.register("people", views.PersonViewSet, basename="person")
router.register("services", views.ServiceViewSet, basename="service")
router.register("scorecards", views.ScorecardViewSet, basename="scorecard")
router.register("dependencies", views.DependencyViewSet, basename="dependency")
router.register("systems", views.SystemViewSet, basename="system")
router.register("apis", views.ApiViewSet, basename="api")
router.register("resources", views.ResourceViewSet, basename="resource")

urlpatterns = list(router.urls)

urlpatterns += [
    path("catalog/import", backstage.CatalogImportView.as_view(), name="catalog-import"),
    path("catalog/export", backstage.CatalogExportView.as_view(), name="catalog-export"),
]
