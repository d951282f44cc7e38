from django.urls import path

from infra import views

app_name = "infra"

urlpatterns = [
    path("infra/", views.workspace_list, name="workspace_list"),
    path("infra/new", views.workspace_new, name="workspace_new"),
    path("infra/board", views.board, name="board"),
    path("infra/services/<entity:slug>/panel", views.service_panel, name="service_panel"),
    path("infra/runs/<int:pk>/", views.run_detail, name="run_detail"),
    path("infra/runs/<int:pk>/log", views.run_log, name="run_log"),
    path("infra/runs/<int:pk>/apply", views.run_apply, name="run_apply"),
    path("infra/runs/<int:pk>/discard", views.run_discard, name="run_discard"),
    path("infra/runs/<int:pk>/cancel", views.run_cancel, name="run_cancel"),
    path("infra/<slug:slug>/", views.workspace_detail, name="workspace_detail"),
    path("infra/<slug:slug>/edit", views.workspace_edit, name="workspace_edit"),
    path("infra/<slug:slug>/plan", views.workspace_plan, name="workspace_plan"),
    path(
        "infra/<slug:slug>/drift-check", views.workspace_drift_check, name="workspace_drift_check"
    ),
    path("infra/<slug:slug>/unlock", views.workspace_unlock, name="workspace_unlock"),
    path("infra/<slug:slug>/variables", views.variable_add, name="variable_add"),
    path(
        "infra/<slug:slug>/variables/<int:pk>/delete",
        views.variable_delete,
        name="variable_delete",
    ),
]
