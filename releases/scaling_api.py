"""Scaling API: ``POST /api/v1/services/<slug>/scale``, ``GET/POST
/api/v1/services/<slug>/schedules`` (``DELETE .../schedules/<id>``) and
``GET /api/v1/services/<slug>/runtime``. Thin: each calls one function of ``releases.scaling``
or ``releases.runtime``."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.actors import Actor
from portal.errors import Invalid
from releases import runtime, scaling
from releases.models import ScaleEvent, ScaleSchedule
from squads.models import Service


class ScaleRequestSerializer(serializers.Serializer):
    environment = serializers.CharField(help_text="An environment's name, e.g. production.")
    replicas = serializers.IntegerField(min_value=0, help_text="Instances of the stable track.")
    reason = serializers.CharField(required=False, allow_blank=True, max_length=300)


class ScaleEventSerializer(serializers.ModelSerializer):
    service = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    environment = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = ScaleEvent
        fields = [
            "id",
            "service",
            "environment",
            "replicas",
            "previous",
            "via",
            "status",
            "error",
            "reason",
            "schedule",
            "terraform_run_id",
            "actor",
            "door",
            "at",
        ]


class ScheduleSerializer(serializers.ModelSerializer):
    environment = serializers.SlugRelatedField(slug_field="name", read_only=True)
    timezone = serializers.CharField(source="tz", read_only=True)

    class Meta:
        model = ScaleSchedule
        fields = [
            "id",
            "name",
            "environment",
            "cron",
            "duration_minutes",
            "timezone",
            "replicas",
            "base_replicas",
            "enabled",
            "created_by",
            "created_at",
        ]


class ScheduleCreateSerializer(serializers.Serializer):
    environment = serializers.CharField()
    name = serializers.CharField(required=False, allow_blank=True, max_length=100)
    cron = serializers.CharField(
        help_text="When a window opens: five cron fields, e.g. '0 17 * * 1-5'."
    )
    duration_minutes = serializers.IntegerField(min_value=1)
    timezone = serializers.CharField(
        required=False, default="UTC", help_text="IANA name, e.g. Europe/Stockholm."
    )
    replicas = serializers.IntegerField(min_value=0, help_text="Replicas inside the window.")
    base_replicas = serializers.IntegerField(
        min_value=0, help_text="Replicas outside every window."
    )


def _service(slug) -> Service:
    return get_object_or_404(Service.objects.select_related("owner"), slug=slug)


def _body(request) -> dict:
    if not isinstance(request.data, dict):
        raise Invalid(errors={"non_field_errors": "the body must be a JSON object"})
    return dict(request.data)


class ScaleView(APIView):
    """Scale a service in an environment (squad members, org admins; tokens: scaling:write). 400 outside the service's min/max, for a non-integer or an environment
    whose driver cannot scale; 502 when the deployer refused."""

    @extend_schema(request=ScaleRequestSerializer, responses={201: ScaleEventSerializer})
    def post(self, request, slug):
        service, body = _service(slug), _body(request)
        event = scaling.scale_service(
            service,
            actor=Actor.from_request(request, door="api"),
            environment=body.get("environment"),
            replicas=body.get("replicas"),
            reason=str(body.get("reason") or ""),
        )
        return Response(ScaleEventSerializer(event).data, status=status.HTTP_201_CREATED)


class SchedulesView(APIView):
    """A service's peak-hour schedules: windows (cron start, duration, timezone) at a replica
    count, the base count outside them. Overlapping windows are refused."""

    @extend_schema(responses=ScheduleSerializer(many=True))
    def get(self, request, slug):
        service = _service(slug)
        qs = ScaleSchedule.objects.filter(service=service).select_related("environment")
        return Response(ScheduleSerializer(qs, many=True).data)

    @extend_schema(request=ScheduleCreateSerializer, responses={201: ScheduleSerializer})
    def post(self, request, slug):
        service, body = _service(slug), _body(request)
        schedule = scaling.create_schedule(
            service,
            actor=Actor.from_request(request, door="api"),
            environment=body.get("environment"),
            name=body.get("name") or "",
            cron=body.get("cron"),
            duration_minutes=body.get("duration_minutes"),
            timezone=body.get("timezone") or "UTC",
            replicas=body.get("replicas"),
            base_replicas=body.get("base_replicas"),
        )
        return Response(ScheduleSerializer(schedule).data, status=status.HTTP_201_CREATED)


class ScheduleDetailView(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request, slug, pk):
        schedule = get_object_or_404(
            ScaleSchedule.objects.select_related("service__owner"), pk=pk, service__slug=slug
        )
        scaling.delete_schedule(schedule, actor=Actor.from_request(request, door="api"))
        return Response(status=status.HTTP_204_NO_CONTENT)


class RuntimeView(APIView):
    """Where the service runs and what runs there, per environment, from the deploy driver."""

    @extend_schema(responses=dict)
    def get(self, request, slug):
        return Response(runtime.runtime_snapshot(_service(slug)))
