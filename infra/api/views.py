"""REST API: workspaces, their variables and outputs, Terraform runs and their logs."""

from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from infra import services
from infra.api.serializers import (
    DiscardSerializer,
    PlanRequestSerializer,
    TerraformRunSerializer,
    VariableSerializer,
    WorkspaceSerializer,
)
from infra.filters import TerraformRunFilter, WorkspaceFilter
from infra.models import TerraformRun, Variable, Workspace
from portal.actors import Actor
from portal.api.logs import LOG_LIMIT, OFFSET_PARAMETER, LogPageSerializer, log_response
from squads.models import Service


class WorkspaceViewSet(
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.ReadOnlyModelViewSet,
):
    """Terraform workspaces. Writes need membership of the owning squad (or `infra:apply`)."""

    queryset = (
        Workspace.objects.select_related("owner", "lock_run")
        .prefetch_related(Prefetch("services", queryset=Service.objects.only("slug")))
        .order_by("name")
    )
    serializer_class = WorkspaceSerializer
    filterset_class = WorkspaceFilter
    ordering_fields = ["name", "slug", "created_at", "drift_checked_at"]
    lookup_field = "slug"

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        owner = data.pop("owner")
        svcs = data.pop("services", [])
        data.setdefault("name", data["slug"])
        serializer.instance = services.create_workspace(
            owner, actor=Actor.from_request(self.request), services=svcs, **data
        )

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        data.pop("slug", None)
        serializer.instance = services.update_workspace(
            serializer.instance, actor=Actor.from_request(self.request), **data
        )

    @extend_schema(
        methods=["post"], request=PlanRequestSerializer, responses={201: TerraformRunSerializer}
    )
    @extend_schema(methods=["get"], responses=TerraformRunSerializer(many=True))
    @action(detail=True, methods=["get", "post"])
    def runs(self, request, slug=None):
        """GET: the workspace's runs, newest first. POST: start a plan (queued in order)."""
        ws = self.get_object()
        if request.method == "GET":
            qs = TerraformRun.objects.filter(workspace=ws).select_related("workspace")
            page = self.paginate_queryset(qs)
            return self.get_paginated_response(TerraformRunSerializer(page, many=True).data)
        ser = PlanRequestSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        run = services.queue_run(
            ws, actor=Actor.from_request(request), message=ser.validated_data.get("message", "")
        )
        return Response(TerraformRunSerializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        methods=["post"], request=VariableSerializer, responses={201: VariableSerializer}
    )
    @extend_schema(methods=["get"], responses=VariableSerializer(many=True))
    @action(detail=True, methods=["get", "post"], pagination_class=None, filter_backends=[])
    def variables(self, request, slug=None):
        """Variables (Terraform or environment). Sensitive values are never returned."""
        ws = self.get_object()
        if request.method == "GET":
            return Response(VariableSerializer(ws.variables.all(), many=True).data)
        ser = VariableSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        var = services.set_variable(ws, actor=Actor.from_request(request), **ser.validated_data)
        return Response(VariableSerializer(var).data, status=status.HTTP_201_CREATED)

    @extend_schema(methods=["patch"], request=VariableSerializer, responses=VariableSerializer)
    @extend_schema(methods=["delete"], request=None, responses={204: None})
    @action(detail=True, methods=["patch", "delete"], url_path=r"variables/(?P<var_id>[0-9]+)")
    def variable(self, request, slug=None, var_id=None):
        ws = self.get_object()
        var = get_object_or_404(Variable, workspace=ws, pk=var_id)
        actor = Actor.from_request(request)
        if request.method == "DELETE":
            services.delete_variable(var, actor=actor)
            return Response(status=status.HTTP_204_NO_CONTENT)
        ser = VariableSerializer(var, data=request.data, partial=True)
        ser.is_valid(raise_exception=True)
        data = ser.validated_data
        if (
            "key" in data
            and data["key"] != var.key
            or data.get("category", var.category) != var.category
        ):
            raise ValidationError({"key": "key and category cannot change; delete and re-create"})
        if "value" not in data:
            if var.sensitive:
                raise ValidationError({"value": "give the new value of a sensitive variable"})
            data["value"] = var.value
        var = services.set_variable(
            ws,
            actor=actor,
            key=var.key,
            category=var.category,
            value=data["value"],
            sensitive=data.get("sensitive", var.sensitive),
            description=data.get("description", var.description),
        )
        return Response(VariableSerializer(var).data)

    @extend_schema(responses=dict)
    @action(detail=True, methods=["get"])
    def outputs(self, request, slug=None):
        """Outputs of the current state (after the last apply); sensitive values hidden."""
        ws = self.get_object()
        return Response(
            {
                "workspace": ws.slug,
                "state_serial": ws.state_serial,
                "last_applied_at": ws.last_applied_at,
                "outputs": ws.outputs,
            }
        )

    @extend_schema(request=None, responses=WorkspaceSerializer)
    @action(detail=True, methods=["post"], url_path="force-unlock")
    def force_unlock(self, request, slug=None):
        """Org admins: release the lock (a running holder is marked errored). Audited."""
        services.force_unlock(self.get_object(), actor=Actor.from_request(request))
        return self.retrieve(request, slug=slug)  # the workspace as it is now


class TerraformRunViewSet(viewsets.ReadOnlyModelViewSet):
    """Terraform runs: status and plan summary; apply, discard, cancel; the live log."""

    queryset = TerraformRun.objects.select_related("workspace", "workspace__owner")
    serializer_class = TerraformRunSerializer
    filterset_class = TerraformRunFilter
    ordering_fields = ["created_at", "finished_at"]

    def _do(self, fn, **kw):
        run = self.get_object()
        run = fn(run, actor=Actor.from_request(self.request), **kw)
        return Response(TerraformRunSerializer(run).data)

    @extend_schema(request=None, responses=TerraformRunSerializer)
    @action(detail=True, methods=["post"])
    def apply(self, request, pk=None):
        """Apply exactly the saved plan. 409 unless the run is awaiting confirmation (planned)
        or when the plan is stale (the run is then discarded)."""
        return self._do(services.apply_run)

    @extend_schema(request=DiscardSerializer, responses=TerraformRunSerializer)
    @action(detail=True, methods=["post"])
    def discard(self, request, pk=None):
        ser = DiscardSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        return self._do(services.discard_run, reason=ser.validated_data.get("reason", ""))

    @extend_schema(request=None, responses=TerraformRunSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._do(services.cancel_run)

    @extend_schema(parameters=[OFFSET_PARAMETER], responses=LogPageSerializer)
    @action(detail=True, methods=["get"])
    def log(self, request, pk=None):
        run = self.get_object()  # read before the log: nothing written after its status is missed
        return log_response(request, lambda offset: services.log_page(run, offset, limit=LOG_LIMIT))
