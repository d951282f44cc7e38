from django.urls import re_path

from portal.api.routers import Router
from releases import api, scaling_api

router = Router()
router.register("releases", api.ReleaseViewSet, basename="release")
router.register("environments", api.EnvironmentViewSet, basename="environment")
router.register("release-strategies", api.StrategyViewSet, basename="release-strategy")
router.register("analysis-templates", api.TemplateViewSet, basename="analysis-template")

SERVICE = r"^services/(?P<slug>[-a-zA-Z0-9_.]+)"
urlpatterns = [
    re_path(rf"{SERVICE}/scale/?$", scaling_api.ScaleView.as_view(), name="service-scale"),
    re_path(
        rf"{SERVICE}/schedules/?$", scaling_api.SchedulesView.as_view(), name="service-schedules"
    ),
    re_path(
        rf"{SERVICE}/schedules/(?P<pk>[0-9]+)/?$",
        scaling_api.ScheduleDetailView.as_view(),
        name="service-schedule-detail",
    ),
    re_path(rf"{SERVICE}/runtime/?$", scaling_api.RuntimeView.as_view(), name="service-runtime"),
    *router.urls,
]
