from django.urls import re_path

from pipelines.api import views
from portal.api.routers import Router

router = Router()
router.register("runs", views.RunViewSet, basename="pipelinerun")

SLUG = r"(?P<slug>[-a-zA-Z0-9_]+)"

urlpatterns = [
    *router.urls,
    re_path(rf"^services/{SLUG}/runs/?$", views.ServiceRunsView.as_view(), name="service-runs"),
    re_path(
        rf"^services/{SLUG}/ci-runs/?$", views.ServiceCIRunsView.as_view(), name="service-ci-runs"
    ),
    re_path(
        rf"^services/{SLUG}/pipeline-secrets/?$",
        views.ServiceSecretsView.as_view(),
        name="service-pipeline-secrets",
    ),
    re_path(
        rf"^services/{SLUG}/pipeline-secrets/(?P<name>[A-Za-z_][A-Za-z0-9_]*)/?$",
        views.ServiceSecretDetailView.as_view(),
        name="service-pipeline-secret",
    ),
    re_path(
        rf"^services/{SLUG}/pipeline-spec/?$",
        views.ServiceSpecView.as_view(),
        name="service-pipeline-spec",
    ),
]
