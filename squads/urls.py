from django.urls import path

from squads import views
from squads.discovery import views as discovery_views

app_name = "squads"

urlpatterns = [
    path("catalog/", views.service_list, name="service_list"),
    path("catalog/import/", views.catalog_import, name="catalog_import"),
    path("catalog/export.yaml", views.catalog_export, name="catalog_export"),
    path("catalog/discovery/", discovery_views.discovery, name="discovery"),  # issue 18
    path("services/<entity:slug>/", views.service_detail, name="service_detail"),
    path("services/<entity:slug>/edit/", views.service_edit, name="service_edit"),
    path("squads/", views.squad_list, name="squad_list"),
    path("squads/mine/", views.my_squads, name="my_squads"),
    path("squads/<entity:slug>/", views.squad_detail, name="squad_detail"),
    path("tribes/<entity:slug>/", views.tribe_detail, name="tribe_detail"),
    path("systems/<entity:slug>/", views.system_detail, name="system_detail"),
    path("apis/<entity:slug>/", views.api_detail, name="api_detail"),
]
