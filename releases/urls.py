from django.urls import path

from releases import runtime_views, views

app_name = "releases"

urlpatterns = [
    path("releases/", views.release_list, name="release_list"),
    path("releases/board/", views.board, name="release_board"),
    path("releases/<int:pk>/", views.release_detail, name="release_detail"),
    path("releases/<int:pk>/promote", views.release_promote, name="release_promote"),
    path("releases/<int:pk>/promote-full", views.release_promote_full, name="release_promote_full"),
    path("releases/<int:pk>/abort", views.release_abort, name="release_abort"),
    path("releases/<int:pk>/retry", views.release_retry, name="release_retry"),
    path(
        "releases/services/<entity:slug>/panel",
        views.service_panel,
        name="release_service_panel",
    ),
    path("releases/services/<entity:slug>/start", views.release_start, name="release_start"),
    path(
        "releases/services/<entity:slug>/runtime",
        runtime_views.runtime_panel,
        name="runtime_panel",
    ),
    path("releases/services/<entity:slug>/scale", runtime_views.scale, name="service_scale"),
    path(
        "releases/services/<entity:slug>/schedules",
        runtime_views.schedule_create,
        name="schedule_create",
    ),
    path(
        "releases/services/<entity:slug>/schedules/<int:pk>/delete",
        runtime_views.schedule_delete,
        name="schedule_delete",
    ),
]
