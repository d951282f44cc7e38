from portal.routes import routes
from squads import views
from squads.discovery import views as discovery_views

app_name = "squads"

urlpatterns = routes(
    views,
    """
    catalog/                      service_list
    catalog/import/               catalog_import
    catalog/export.yaml           catalog_export
    services/<entity:slug>/       service_detail
    services/<entity:slug>/edit/  service_edit
    squads/                       squad_list
    squads/mine/                  my_squads
    squads/<entity:slug>/         squad_detail
    tribes/<entity:slug>/         tribe_detail
    systems/<entity:slug>/        system_detail
    apis/<entity:slug>/           api_detail
    """,
) + routes(discovery_views, "catalog/discovery/  discovery")  # issue 18
