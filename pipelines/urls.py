from django.urls import path

from pipelines import views

app_name = "pipelines"

urlpatterns = [
    path("pipelines/", views.run_list, name="run_list"),
    path("pipelines/board/", views.board, name="board"),
    path("pipelines/runs/<int:pk>/", views.run_detail, name="run_detail"),
    path("pipelines/runs/<int:pk>/log", views.run_log, name="run_log"),
    path("pipelines/runs/<int:pk>/log.txt", views.run_log_text, name="run_log_text"),
    path("pipelines/runs/<int:pk>/steps/<int:index>/log", views.step_log, name="step_log"),
    path("pipelines/runs/<int:pk>/jobs/<int:index>/log", views.job_log, name="job_log"),
    path(
        "pipelines/runs/<int:pk>/artifacts/<int:artifact_id>",
        views.run_artifact,
        name="run_artifact",
    ),
    path("pipelines/runs/<int:pk>/approve", views.run_approve, name="run_approve"),
    path("pipelines/runs/<int:pk>/reject", views.run_reject, name="run_reject"),
    path("pipelines/runs/<int:pk>/cancel", views.run_cancel, name="run_cancel"),
    path("pipelines/runs/<int:pk>/rerun", views.run_rerun, name="run_rerun"),
    path("pipelines/services/<entity:slug>/", views.service_pipeline, name="service_pipeline"),
    path("pipelines/services/<entity:slug>/panel", views.service_panel, name="service_panel"),
    path("pipelines/squads/<entity:slug>/panel", views.squad_panel, name="squad_panel"),
    path("pipelines/services/<entity:slug>/run", views.service_trigger, name="service_trigger"),
    path("pipelines/services/<entity:slug>/jenkins", views.jenkins_builds, name="jenkins_builds"),
    path("pipelines/services/<entity:slug>/spec", views.spec_save, name="spec_save"),
    path("pipelines/services/<entity:slug>/secrets", views.secret_set, name="secret_set"),
    path(
        "pipelines/services/<entity:slug>/secrets/<str:name>/delete",
        views.secret_delete,
        name="secret_delete",
    ),
]
