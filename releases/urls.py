from portal.routes import routes
from releases import runtime_views, views

app_name = "releases"

urlpatterns = routes(
    views,
    """
    releases/                              release_list
    releases/board/                        board                 release_board
    releases/<int:pk>/                     release_detail
    releases/<int:pk>/promote              release_promote
    releases/<int:pk>/promote-full         release_promote_full
    releases/<int:pk>/abort                release_abort
    releases/<int:pk>/retry                release_retry
    releases/services/<entity:slug>/panel  service_panel         release_service_panel
    releases/services/<entity:slug>/start  release_start
    """,
) + routes(
    runtime_views,
    """
    releases/services/<entity:slug>/runtime                    runtime_panel
    releases/services/<entity:slug>/scale                      scale            service_scale
    releases/services/<entity:slug>/schedules                  schedule_create
    releases/services/<entity:slug>/schedules/<int:pk>/delete  schedule_delete
    """,
)
