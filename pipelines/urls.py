from pipelines import views
from portal.routes import routes

app_name = "pipelines"

urlpatterns = routes(
    views,
    """
    pipelines/                                                  run_list
    pipelines/board/                                            board
    pipelines/runs/<int:pk>/                                    run_detail
    pipelines/runs/<int:pk>/log                                 run_log
    pipelines/runs/<int:pk>/log.txt                             run_log_text
    pipelines/runs/<int:pk>/steps/<int:index>/log               step_log
    pipelines/runs/<int:pk>/jobs/<int:index>/log                job_log
    pipelines/runs/<int:pk>/artifacts/<int:artifact_id>         run_artifact
    pipelines/runs/<int:pk>/approve                             run_approve
    pipelines/runs/<int:pk>/reject                              run_reject
    pipelines/runs/<int:pk>/cancel                              run_cancel
    pipelines/runs/<int:pk>/rerun                               run_rerun
    pipelines/services/<entity:slug>/                           service_pipeline
    pipelines/services/<entity:slug>/panel                      service_panel
    pipelines/squads/<entity:slug>/panel                        squad_panel
    pipelines/services/<entity:slug>/run                        service_trigger
    pipelines/services/<entity:slug>/jenkins                    jenkins_builds
    pipelines/services/<entity:slug>/spec                       spec_save
    pipelines/services/<entity:slug>/secrets                    secret_set
    pipelines/services/<entity:slug>/secrets/<str:name>/delete  secret_delete
    """,
)
