from monitoring import views
from portal.routes import routes

app_name = "monitoring"

urlpatterns = routes(
    views,
    """
    dashboards/                              dashboard_index
    dashboards/services/<entity:slug>/       service_dashboard
    dashboards/services/<entity:slug>/panel  service_panel
    dashboards/services/<entity:slug>/rules  rule_create
    dashboards/squads/<entity:slug>/         squad_dashboard
    dashboards/squads/<entity:slug>/panel    squad_panel
    alerts/                                  alert_list
    alerts/board                             board
    alerts/<int:pk>/                         alert_detail
    alerts/rules/<int:pk>/delete             rule_delete
    alerts/channels/                         channel_create
    """,
)
