"""Releases API: ``/api/v1/releases/`` (list, create, detail) with the actions ``promote``,
``promote-full``, ``abort`` and ``retry``; ``/api/v1/environments/``; services' own
strategies (``/api/v1/release-strategies/``) and analysis templates
(``/api/v1/analysis-templates/``). Thin: each action calls
one function of ``releases.services``."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from portal.actors import Actor
from releases import services, strategy
from releases.filters import ReleaseFilter, StrategyFilter
from releases.models import (
    AnalysisRun,
    AnalysisTemplate,
    Environment,
    Measurement,
    Release,
    ReleaseEvent,
    StrategyOverride,
)
from squads.models import Service


class EnvironmentSerializer(serializers.ModelSerializer):
    driver = serializers.CharField(read_only=True, help_text="local | webhook | haproxy")

    class Meta:
        model = Environment
        fields = ["name", "title", "order", "production", "driver", "strategy"]


class ReleaseSerializer(serializers.ModelSerializer):
    service = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    squad = serializers.SerializerMethodField()
    environment = serializers.SlugRelatedField(slug_field="name", read_only=True)
    current_step = serializers.SerializerMethodField()
    steps_total = serializers.SerializerMethodField()
    status = serializers.CharField(
        read_only=True, help_text="pending | progressing | paused | succeeded | aborted | failed"
    )
    applying = serializers.BooleanField(
        read_only=True, help_text="A deploy-driver call is on its way and not yet confirmed."
    )
    driver_call = serializers.JSONField(
        read_only=True, help_text="The wanted driver call: {id, action, weight, at}, or {}."
    )

    class Meta:
        model = Release
        fields = [
            "id",
            "service",
            "squad",
            "environment",
            "version",
            "commit_sha",
            "status",
            "step_index",
            "current_step",
            "steps_total",
            "weight",
            "desired_weight",
            "applying",
            "driver_call",
            "message",
            "driver_error",
            "strategy_source",
            "started_by",
            "trigger",
            "pipeline_run",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def get_squad(self, obj) -> str | None:
        return obj.service.owner.slug if obj.service.owner_id else None

    def get_current_step(self, obj) -> str | None:
        step = obj.current_step
        return strategy.describe(step) if step else None

    def get_steps_total(self, obj) -> int:
        return len(obj.strategy or [])


class MeasurementSerializer(serializers.ModelSerializer):
    class Meta:
        model = Measurement
        fields = [
            "metric",
            "index",
            "at",
            "phase",
            "value",
            "stable_value",
            "threshold",
            "condition",
            "canary_requests",
            "stable_requests",
            "message",
        ]


class AnalysisRunSerializer(serializers.ModelSerializer):
    measurements = MeasurementSerializer(many=True, read_only=True)
    status = serializers.CharField(
        read_only=True, help_text="pending | running | successful | failed | inconclusive | error"
    )

    class Meta:
        model = AnalysisRun
        fields = [
            "id",
            "generation",
            "step_index",
            "weight",
            "template",
            "status",
            "message",
            "metrics",
            "started_at",
            "finished_at",
            "measurements",
        ]


class ReleaseEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = ReleaseEvent
        fields = [
            "at",
            "kind",
            "from_status",
            "to_status",
            "step_index",
            "weight",
            "message",
            "actor",
            "door",
        ]


class ReleaseDetailSerializer(ReleaseSerializer):
    strategy = serializers.JSONField(read_only=True)
    analysis = AnalysisRunSerializer(source="analysis_runs", many=True, read_only=True)
    timeline = ReleaseEventSerializer(source="events", many=True, read_only=True)
    allowed_actions = serializers.SerializerMethodField(
        help_text="What the caller may do next: promote, promote_full, abort, retry."
    )

    class Meta(ReleaseSerializer.Meta):
        fields = [
            *ReleaseSerializer.Meta.fields,
            "strategy",
            "analysis",
            "timeline",
            "allowed_actions",
        ]

    def get_allowed_actions(self, obj) -> list[str]:
        request = self.context.get("request")
        if request is None:
            return []
        return sorted(services.allowed_actions(obj, Actor.from_request(request, door="api")))


class ReleaseCreateSerializer(serializers.Serializer):
    service = serializers.SlugField()
    version = serializers.CharField(max_length=200)
    environment = serializers.SlugField()
    commit = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    strategy = serializers.JSONField(required=False, allow_null=True, default=None)
    deploy_params = serializers.DictField(required=False, default=dict)


class PromoteSerializer(serializers.Serializer):
    step = serializers.IntegerField(
        required=False,
        min_value=0,
        help_text="The step index you saw paused; refused (409) if the release moved on.",
    )


class ActionSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class ReleaseViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Releases: status, current step, weight, analysis results; create and act on them."""

    filterset_class = ReleaseFilter
    ordering_fields = ["created_at", "finished_at"]

    def get_queryset(self):
        qs = Release.objects.select_related("service", "service__owner", "environment")
        if self.action == "retrieve":
            qs = qs.prefetch_related("analysis_runs__measurements", "events")
        return qs

    def get_serializer_class(self):
        if self.action == "create":
            return ReleaseCreateSerializer
        if self.action == "list":
            return ReleaseSerializer
        return ReleaseDetailSerializer

    def _answer(self, release, code=status.HTTP_200_OK):
        release = (
            self.get_queryset()
            .prefetch_related("analysis_runs__measurements", "events")
            .get(pk=release.pk)
        )
        return Response(
            ReleaseDetailSerializer(release, context=self.get_serializer_context()).data,
            status=code,
        )

    @extend_schema(request=ReleaseCreateSerializer, responses={201: ReleaseDetailSerializer})
    def create(self, request, *args, **kwargs):
        ser = ReleaseCreateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        data = ser.validated_data
        service = Service.objects.select_related("owner").filter(slug=data["service"]).first()
        if service is None:
            raise serializers.ValidationError({"service": ["No such service."]})
        release = services.create_release(
            service,
            actor=Actor.from_request(request, door="api"),
            environment=data["environment"],
            version=data["version"],
            commit=data["commit"],
            steps=data["strategy"],
            trigger="api",
            deploy_params=data["deploy_params"],
        )
        return self._answer(release, status.HTTP_201_CREATED)

    @extend_schema(request=PromoteSerializer, responses=ReleaseDetailSerializer)
    @action(detail=True, methods=["post"])
    def promote(self, request, pk=None):
        ser = PromoteSerializer(data=request.data if hasattr(request.data, "get") else {})
        ser.is_valid(raise_exception=True)
        return self._answer(
            services.promote_release(
                self.get_object(),
                actor=Actor.from_request(request, door="api"),
                step=ser.validated_data.get("step"),
            )
        )

    @extend_schema(request=None, responses=ReleaseDetailSerializer)
    @action(detail=True, methods=["post"], url_path="promote-full")
    def promote_full(self, request, pk=None):
        return self._answer(
            services.promote_release_full(
                self.get_object(), actor=Actor.from_request(request, door="api")
            )
        )

    @extend_schema(request=ActionSerializer, responses=ReleaseDetailSerializer)
    @action(detail=True, methods=["post"])
    def abort(self, request, pk=None):
        reason = str(request.data.get("reason") or "") if hasattr(request.data, "get") else ""
        return self._answer(
            services.abort_release(
                self.get_object(), actor=Actor.from_request(request, door="api"), reason=reason
            )
        )

    @extend_schema(request=None, responses=ReleaseDetailSerializer)
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        return self._answer(
            services.retry_release(self.get_object(), actor=Actor.from_request(request, door="api"))
        )


class EnvironmentViewSet(viewsets.ReadOnlyModelViewSet):
    """Deployment environments and their deploy driver."""

    queryset = Environment.objects.all()
    serializer_class = EnvironmentSerializer
    lookup_field = "name"
    pagination_class = None


class StrategySerializer(serializers.ModelSerializer):
    service = serializers.SlugRelatedField(slug_field="slug", queryset=Service.objects.all())
    environment = serializers.SlugRelatedField(
        slug_field="name",
        queryset=Environment.objects.all(),
        allow_null=True,
        required=False,
        help_text="Environment name; null: every environment without its own strategy.",
    )
    steps = serializers.JSONField(
        help_text="Canary steps: [{set_weight: N}, {pause: {duration: s}}, "
        "{analysis: {template: name}}, ...]"
    )
    describe = serializers.SerializerMethodField()

    class Meta:
        model = StrategyOverride
        fields = ["id", "service", "environment", "steps", "describe", "updated_at"]
        read_only_fields = ["id", "updated_at"]
        validators = []  # (service, environment) taken: a 409 from the domain, not a 400

    def get_describe(self, obj) -> list[str]:
        return [strategy.describe(s) for s in obj.steps]

    def validate(self, attrs):
        if self.instance is not None:
            for key in ("service", "environment"):
                if key in attrs and attrs[key] != getattr(self.instance, key):
                    raise serializers.ValidationError(
                        {key: ["cannot change; delete this strategy and create another"]}
                    )
        return attrs


class StrategyViewSet(viewsets.ModelViewSet):
    """A service's own canary steps, per environment (or for every environment): they replace
    the environment's default strategy for the service's next releases. Owners of the service
    (tokens: ``releases:promote``) and org admins."""

    serializer_class = StrategySerializer
    filterset_class = StrategyFilter
    queryset = StrategyOverride.objects.select_related(
        "service", "service__owner", "environment"
    ).order_by("service__slug", "environment__name", "id")

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = services.save_strategy(
            data["service"],
            actor=Actor.from_request(self.request, door="api"),
            environment=data.get("environment"),
            steps=data["steps"],
        )

    def perform_update(self, serializer):
        inst = serializer.instance
        serializer.instance = services.save_strategy(
            inst.service,
            actor=Actor.from_request(self.request, door="api"),
            environment=inst.environment,
            steps=serializer.validated_data.get("steps", inst.steps),
            override=inst,
        )

    def perform_destroy(self, instance):
        services.delete_strategy(instance, actor=Actor.from_request(self.request, door="api"))


class TemplateSerializer(serializers.ModelSerializer):
    name = serializers.SlugField(max_length=100)  # taken: a 409 from the domain, not a 400
    metrics = serializers.JSONField(
        help_text="Metrics: golden-signal shortcuts or raw queries with limits (DESIGN.md)."
    )

    class Meta:
        model = AnalysisTemplate
        fields = ["name", "description", "metrics", "updated_at"]
        read_only_fields = ["updated_at"]
        validators = []

    def validate_name(self, value):
        if self.instance is not None and value != self.instance.name:
            raise serializers.ValidationError("cannot change; strategies refer to it by name")
        return value


class TemplateViewSet(viewsets.ModelViewSet):
    """Analysis templates: the metrics a canary analysis measures. Org admins (tokens:
    ``admin``) change them; deleting one in use by a strategy or active release is a 409."""

    serializer_class = TemplateSerializer
    queryset = AnalysisTemplate.objects.order_by("name")
    lookup_field = "name"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = services.save_template(
            None,
            actor=Actor.from_request(self.request, door="api"),
            name=data["name"],
            description=data.get("description", ""),
            metrics=data["metrics"],
        )

    def perform_update(self, serializer):
        inst = serializer.instance
        data = serializer.validated_data
        serializer.instance = services.save_template(
            inst,
            actor=Actor.from_request(self.request, door="api"),
            name=inst.name,
            description=data.get("description", inst.description),
            metrics=data.get("metrics", inst.metrics),
        )

    def perform_destroy(self, instance):
        services.delete_template(instance, actor=Actor.from_request(self.request, door="api"))
