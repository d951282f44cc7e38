from django.urls import path

from monitoring import views

app_name = "monitoring"

urlpatterns = [
    path("dashboards/", views.dashboard_index, name="dashboard_index"),
    path("dashboards/services/<entity:slug>/", views.service_dashboard, name="service_dashboard"),
    path("dashboards/services/<entity:slug>/panel", views.service_panel, name="service_panel"),
    path("dashboards/services/<entity:slug>/rules", views.rule_create, name="rule_create"),
    path("dashboards/squads/<entity:slug>/", views.squad_dashboard, name="squad_dashboard"),
    path("dashboards/squads/<entity:slug>/panel", views.squad_panel, name="squad_panel"),
    path("alerts/", views.alert_list, name="alert_list"),
    path("alerts/board", views.board, name="board"),
    path("alerts/<int:pk>/", views.alert_detail, name="alert_detail"),
    path("alerts/rules/<int:pk>/delete", views.rule_delete, name="rule_delete"),
    path("alerts/channels/", views.channel_create, name="channel_create"),
]
