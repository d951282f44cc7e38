from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from portal import events, services
from portal.actors import Actor
from portal.api.serializers import (
    ApiTokenCreateSerializer,
    ApiTokenSerializer,
    AuditEventSerializer,
    EventDeliverySerializer,
    EventSubscriptionSerializer,
    EventTypeSerializer,
    MeSerializer,
)
from portal.filters import AuditEventFilter
from portal.models import ApiToken, AuditEvent, EventDelivery, EventSubscription


class MeView(APIView):
    @extend_schema(responses=MeSerializer)
    def get(self, request):
        actor = Actor.from_request(request)
        return Response(MeSerializer.for_actor(actor))


class EventTypeView(APIView):
    """The event types a subscription may select, as registered by the apps that emit them."""

    @extend_schema(responses=EventTypeSerializer(many=True))
    def get(self, request):
        types = events.event_types()
        return Response([{"name": n, "description": d} for n, d in types.items()])


class ApiTokenViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Bot tokens. Only a hash is stored; the clear token appears once, in the create answer."""

    serializer_class = ApiTokenSerializer
    filterset_fields = ["squad__slug"]
    ordering_fields = ["created_at", "name"]

    def get_queryset(self):
        qs = ApiToken.objects.select_related("squad", "created_by")
        actor = Actor.from_request(self.request)
        if actor.is_admin:
            return qs
        return qs.filter(squad_id__in=actor.squad_ids())

    def get_serializer_class(self):
        return ApiTokenCreateSerializer if self.action == "create" else ApiTokenSerializer

    def create(self, request, *args, **kwargs):
        ser = ApiTokenCreateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        data = ser.validated_data
        expires_at = None
        if data.get("expires_in_days"):
            expires_at = timezone.now() + timedelta(days=data["expires_in_days"])
        token, raw = services.create_token(
            data["squad"],
            actor=Actor.from_request(request),
            name=data["name"],
            scopes=data["scopes"],
            expires_at=expires_at,
        )
        shown = ApiTokenSerializer(token).data
        response = Response({**shown, "token": raw}, status=status.HTTP_201_CREATED)
        # a repeat with the same Idempotency-Key: "already created", never the value again
        response.idempotent_replay = (  # type: ignore[attr-defined]
            status.HTTP_409_CONFLICT,
            {
                "code": "already_created",
                "message": "A token was already created by the first request with this "
                "Idempotency-Key; its value is shown only once.",
                "state": dict(shown),
            },
        )
        return response

    @extend_schema(request=None, responses=ApiTokenSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        services.revoke_token(self.get_object(), actor=Actor.from_request(request))
        return self.retrieve(request, pk=pk)  # the token as it is now


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = AuditEvent.objects.select_related("squad").all()
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter
    ordering_fields = ["created_at"]


class EventSubscriptionViewSet(viewsets.ModelViewSet):
    """Outbound webhooks of a squad (HMAC-SHA256 signed; see portal/events.py)."""

    serializer_class = EventSubscriptionSerializer
    filterset_fields = ["squad__slug", "active"]

    def get_queryset(self):
        qs = EventSubscription.objects.select_related("squad")
        actor = Actor.from_request(self.request)
        return qs if actor.is_admin else qs.filter(squad_id__in=actor.squad_ids())

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        serializer.instance = services.create_subscription(
            data.pop("squad"), actor=Actor.from_request(self.request, door="api"), **data
        )

    def perform_update(self, serializer):
        serializer.instance = services.update_subscription(
            serializer.instance,
            actor=Actor.from_request(self.request, door="api"),
            **serializer.validated_data,
        )

    def perform_destroy(self, instance):
        services.delete_subscription(instance, actor=Actor.from_request(self.request, door="api"))


class EventDeliveryViewSet(viewsets.ReadOnlyModelViewSet):
    """The delivery log: every attempt with its response code; Redeliver sends it again."""

    serializer_class = EventDeliverySerializer
    filterset_fields = ["subscription", "status", "event_type"]

    def get_queryset(self):
        qs = EventDelivery.objects.select_related("subscription").prefetch_related("attempt_log")
        actor = Actor.from_request(self.request)
        return qs if actor.is_admin else qs.filter(subscription__squad_id__in=actor.squad_ids())

    @extend_schema(request=None, responses={201: EventDeliverySerializer})
    @action(detail=True, methods=["post"])
    def redeliver(self, request, pk=None):
        new = events.redeliver(Actor.from_request(request, door="api"), self.get_object())
        return Response(EventDeliverySerializer(new).data, status=status.HTTP_201_CREATED)
