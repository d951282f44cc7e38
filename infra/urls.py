from infra import views
from portal.routes import routes

app_name = "infra"

urlpatterns = routes(
    views,
    """
    infra/                                       workspace_list
    infra/new                                    workspace_new
    infra/board                                  board
    infra/services/<entity:slug>/panel           service_panel
    infra/runs/<int:pk>/                         run_detail
    infra/runs/<int:pk>/log                      run_log
    infra/runs/<int:pk>/apply                    run_apply
    infra/runs/<int:pk>/discard                  run_discard
    infra/runs/<int:pk>/cancel                   run_cancel
    infra/<slug:slug>/                           workspace_detail
    infra/<slug:slug>/edit                       workspace_edit
    infra/<slug:slug>/plan                       workspace_plan
    infra/<slug:slug>/drift-check                workspace_drift_check
    infra/<slug:slug>/unlock                     workspace_unlock
    infra/<slug:slug>/variables                  variable_add
    infra/<slug:slug>/variables/<int:pk>/delete  variable_delete
    """,
)
