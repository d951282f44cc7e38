from django.urls import path

from pipelines import views
from pipelines.releases import urls as release_urls

app_name = "pipelines"

urlpatterns = [
    path("pipelines/", views.run_list, name="run_list"),
    path("pipelines/board/", views.board, name="board"),
    path("pipelines/runs/<int:pk>/", views.run_detail, name="run_detail"),
    path("pipelines/runs/<int:pk>/log", views.run_log, name="run_log"),
    path("pipelines/runs/<int:pk>/log.txt", views.run_log_text, name="run_log_text"),
    path("pipelines/runs/<int:pk>/cancel", views.run_cancel, name="run_cancel"),
    path("pipelines/runs/<int:pk>/rerun", views.run_rerun, name="run_rerun"),
    path("pipelines/services/<slug:slug>/", views.service_pipeline, name="service_pipeline"),
    path("pipelines/services/<slug:slug>/panel", views.service_panel, name="service_panel"),
    path("pipelines/squads/<slug:slug>/panel", views.squad_panel, name="squad_panel"),
    path("pipelines/services/<slug:slug>/run", views.service_trigger, name="service_trigger"),
    path("pipelines/services/<slug:slug>/spec", views.spec_save, name="spec_save"),
    path("pipelines/services/<slug:slug>/secrets", views.secret_set, name="secret_set"),
    path(
        "pipelines/services/<slug:slug>/secrets/<str:name>/delete",
        views.secret_delete,
        name="secret_delete",
    ),
    *release_urls.urlpatterns,
]
