"""Monitoring API: signals, Prometheus HTTP SD, alert rules, alerts, channels, DORA."""

from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from metrics.backends import BackendError, get_backend, range_spec
from monitoring import dora, services
from monitoring.api.serializers import (
    AlertRuleSerializer,
    AlertSerializer,
    NotificationChannelSerializer,
)
from monitoring.dashboards import parse_track
from monitoring.filters import AlertFilter, AlertRuleFilter, NotificationChannelFilter
from monitoring.models import SIGNAL_LABELS, Alert, AlertEvent, AlertRule, NotificationChannel
from monitoring.sd import sd_targets
from portal.actors import Actor
from squads.models import Service, Squad


class BackendUnavailable(APIException):
    status_code = 502
    default_code = "backend_error"
    default_detail = "The metrics backend could not answer."


class SignalsView(APIView):
    """Golden signals of a service over a range, per track."""

    @extend_schema(
        parameters=[
            OpenApiParameter("range", str, enum=["15m", "1h", "6h", "24h", "7d"]),
            OpenApiParameter("track", str, enum=["all", "stable", "canary"]),
        ],
        responses={200: dict},
    )
    def get(self, request, slug):
        service = get_object_or_404(Service, slug=slug)
        try:
            spec = range_spec(request.query_params.get("range"))
        except ValueError as exc:
            raise ValidationError({"range": str(exc)}) from exc
        try:
            tracks = parse_track(request.query_params.get("track"))
        except ValueError as exc:
            raise ValidationError({"track": str(exc)}) from exc
        start, end = spec.bounds()
        backend = get_backend()
        try:
            data = backend.golden_signals(service, tracks, start, end, spec.step, spec.window)
        except BackendError as exc:
            raise BackendUnavailable(str(exc)) from exc
        return Response(
            {
                "service": service.slug,
                "backend": backend.name,
                "range": spec.key,
                "start": start,
                "end": end,
                "step": spec.step,
                "window": spec.window,
                "tracks": {
                    track: {
                        signal: {
                            "label": SIGNAL_LABELS[signal][0],
                            "unit": {"%": "ratio"}.get(
                                SIGNAL_LABELS[signal][1], SIGNAL_LABELS[signal][1]
                            ),
                            "points": [[t, v] for t, v in points],
                        }
                        for signal, points in data[track].items()
                    }
                    for track in tracks
                },
            }
        )


class SDTargetGroupSerializer(serializers.Serializer):
    targets = serializers.ListField(child=serializers.CharField())
    labels = serializers.DictField(child=serializers.CharField())


class PrometheusSDView(APIView):
    """Prometheus HTTP service discovery: every catalog service's metrics endpoints as targets,
    labelled with service, squad, tribe, tier, lifecycle and track."""

    @extend_schema(responses={200: SDTargetGroupSerializer(many=True)})
    def get(self, request):
        return Response(sd_targets())


class DoraView(APIView):
    """DORA metrics for a squad's (or one service's) deployments and incidents over ``days``.

    Deployments: finished production releases when there are any in the window, else
    successful pipeline runs on the default branch; ``?source=`` forces one (see
    ``monitoring/dora.py``)."""

    @extend_schema(
        parameters=[
            OpenApiParameter("squad", str),
            OpenApiParameter("service", str),
            OpenApiParameter("days", int, description="1–365, default 30"),
            OpenApiParameter("source", str, enum=["pipeline_runs", "releases"]),
        ],
        responses={200: dict},
    )
    def get(self, request):
        params = request.query_params
        raw_days = params.get("days") or "30"
        try:
            days = int(raw_days)
        except ValueError as exc:
            raise ValidationError(
                {"days": f"days must be a whole number (got {raw_days!r})"}
            ) from exc
        if not 1 <= days <= 365:
            raise ValidationError({"days": "days must be between 1 and 365"})
        source_name = params.get("source") or ""
        if source_name and source_name not in dora.SOURCES:
            raise ValidationError(
                {"source": f"source must be one of {', '.join(dora.SOURCES)} (default: automatic)"}
            )
        if params.get("service"):
            services_qs = Service.objects.filter(slug=params["service"])
            if not services_qs.exists():
                raise ValidationError({"service": f"no service with slug {params['service']!r}"})
            scope = {"service": params["service"]}
        elif params.get("squad"):
            squad = Squad.objects.filter(slug=params["squad"]).first()
            if squad is None:
                raise ValidationError({"squad": f"no squad with slug {params['squad']!r}"})
            services_qs = Service.objects.filter(owner=squad)
            scope = {"squad": squad.slug}
        else:
            raise ValidationError({"squad": "give ?squad=<slug> or ?service=<slug>"})
        return Response(
            {**scope, **dora.report(services_qs, days=days, source=dora.SOURCES.get(source_name))}
        )


class AlertRuleViewSet(viewsets.ModelViewSet):
    serializer_class = AlertRuleSerializer
    filterset_class = AlertRuleFilter
    queryset = AlertRule.objects.select_related("service", "service__owner")

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        service = data.pop("service")
        serializer.instance = services.create_alert_rule(
            service, actor=Actor.from_request(self.request), **data
        )

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        data.pop("service", None)
        serializer.instance = services.update_alert_rule(
            serializer.instance, actor=Actor.from_request(self.request), **data
        )

    def perform_destroy(self, instance):
        services.delete_alert_rule(instance, actor=Actor.from_request(self.request))


class AlertViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = AlertSerializer
    filterset_class = AlertFilter
    queryset = Alert.objects.select_related("rule", "service").prefetch_related(
        Prefetch("events", queryset=AlertEvent.objects.order_by("at", "pk"))
    )


class NotificationChannelViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = NotificationChannelSerializer
    filterset_class = NotificationChannelFilter
    queryset = NotificationChannel.objects.select_related("squad")

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        serializer.instance = services.create_channel(
            data.pop("squad"), actor=Actor.from_request(self.request), **data
        )

    def perform_destroy(self, instance):
        services.delete_channel(instance, actor=Actor.from_request(self.request))
