from django.urls import path

from portal.api import views
from portal.api.routers import Router

router = Router()
router.register("tokens", views.ApiTokenViewSet, basename="apitoken")
router.register("audit", views.AuditEventViewSet, basename="auditevent")
router.register("event-subscriptions", views.EventSubscriptionViewSet, basename="eventsubscription")
router.register("event-deliveries", views.EventDeliveryViewSet, basename="eventdelivery")

urlpatterns = [
    path("me/", views.MeView.as_view(), name="api-me"),
    path("event-types/", views.EventTypeView.as_view(), name="api-event-types"),
    *router.urls,
]
