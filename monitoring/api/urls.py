from django.urls import path, re_path

from monitoring.api import views
from portal.api.routers import Router

router = Router()
router.register("alert-rules", views.AlertRuleViewSet, basename="alertrule")
router.register("alerts", views.AlertViewSet, basename="alert")
router.register("alert-channels", views.NotificationChannelViewSet, basename="alertchannel")

urlpatterns = [
    path("services/<entity:slug>/signals", views.SignalsView.as_view(), name="service-signals"),
    path("prometheus/sd", views.PrometheusSDView.as_view(), name="prometheus-sd"),
    re_path(r"^dora/?$", views.DoraView.as_view(), name="dora"),
    *router.urls,
]
