from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from portal import services
from portal.actors import Actor
from portal.api.serializers import (
    ApiTokenCreateSerializer,
    ApiTokenSerializer,
    AuditEventSerializer,
    MeSerializer,
)
from portal.filters import AuditEventFilter
from portal.models import ApiToken, AuditEvent


class MeView(APIView):
    @extend_schema(responses=MeSerializer)
    def get(self, request):
        actor = Actor.from_request(request)
        return Response(MeSerializer.for_actor(actor))


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
            Actor.from_request(request),
            squad=data["squad"],
            name=data["name"],
            scopes=data["scopes"],
            expires_at=expires_at,
        )
        body = ApiTokenSerializer(token).data
        body["token"] = raw
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=ApiTokenSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        token = self.get_object()
        services.revoke_token(Actor.from_request(request), token)
        token.refresh_from_db()
        return Response(ApiTokenSerializer(token).data)


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = AuditEvent.objects.select_related("squad").all()
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter
    ordering_fields = ["created_at"]


__all__ = ["serializers"]
