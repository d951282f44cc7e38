from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from pipelines import approvals, jenkins, logs, services
from pipelines.api.serializers import (
    ApprovalSerializer,
    ArtifactSerializer,
    CIRunsSerializer,
    DecisionSerializer,
    PipelineRunDetailSerializer,
    PipelineRunSerializer,
    PipelineSecretSerializer,
    SpecSerializer,
    TriggerSerializer,
)
from pipelines.artifacts import artifact_response
from pipelines.filters import PipelineRunFilter
from pipelines.github import actions
from pipelines.models import (
    JenkinsBuild,
    JobRun,
    PipelineConfig,
    PipelineRun,
    PipelineSecret,
    StepRun,
)
from portal import joblog
from portal.actors import Actor
from portal.api.logs import LOG_LIMIT, OFFSET_PARAMETER, LogPageSerializer, log_response
from squads.models import Service


def _idem(request):
    return (request.headers.get("Idempotency-Key") or "").strip()[:200] or None


class RunViewSet(viewsets.ReadOnlyModelViewSet):
    """Pipeline runs across the portal; filter by service, squad, status, branch."""

    filterset_class = PipelineRunFilter
    ordering_fields = ["created_at", "number", "finished_at"]

    def get_queryset(self):
        qs = PipelineRun.objects.select_related("service", "service__owner")
        if self.action == "retrieve":
            qs = qs.prefetch_related("steps")
        return qs

    def get_serializer_class(self):
        return PipelineRunDetailSerializer if self.action == "retrieve" else PipelineRunSerializer

    @extend_schema(parameters=[OFFSET_PARAMETER], responses=LogPageSerializer)
    @action(detail=True, methods=["get"])
    def log(self, request, pk=None):
        run = self.get_object()  # read before the log: nothing written after its status is missed
        return log_response(request, lambda offset: logs.log_page(run, offset, limit=LOG_LIMIT))

    @extend_schema(parameters=[OFFSET_PARAMETER], responses=LogPageSerializer)
    @action(detail=True, methods=["get"], url_path=r"steps/(?P<index>\d+)/log")
    def step_log(self, request, pk=None, index=None):
        """One step's part of the run log; offsets count from the step's first byte."""
        run = self.get_object()
        step = get_object_or_404(StepRun.objects.select_related("run"), run=run, index=index)
        return log_response(
            request, lambda offset: logs.step_log_page(step, offset, limit=LOG_LIMIT)
        )

    @extend_schema(parameters=[OFFSET_PARAMETER], responses=LogPageSerializer)
    @action(detail=True, methods=["get"], url_path=r"jobs/(?P<index>\d+)/log")
    def job_log(self, request, pk=None, index=None):
        """One job's own log (``jobs:`` pipelines)."""
        job = get_object_or_404(JobRun, run=self.get_object(), index=index)
        return log_response(request, lambda offset: joblog.page(job, offset, limit=LOG_LIMIT))

    @extend_schema(responses=ArtifactSerializer(many=True))
    @action(
        detail=True,
        methods=["get"],
        url_path="artifacts",
        pagination_class=None,  # every artifact of the run, as a plain list
        filter_backends=[],
    )
    def artifacts(self, request, pk=None):
        """The artifacts the run's jobs kept (``artifacts:`` in ``backline.yml``)."""
        run = self.get_object()
        kept = run.artifacts.filter(expires_at__gt=timezone.now()).order_by("name")
        return Response(ArtifactSerializer(kept, many=True).data)

    @extend_schema(responses={(200, "application/gzip"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"], url_path=r"artifacts/(?P<artifact_id>\d+)")
    def artifact(self, request, pk=None, artifact_id=None):
        """One artifact: a gzipped tar of the files the job kept."""
        return artifact_response(self.get_object(), artifact_id)

    def _decide(self, request, approve: bool):
        ser = DecisionSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        approval = approvals.decide_approval(
            self.get_object(),
            actor=Actor.from_request(request, door="api"),
            approve=approve,
            step=ser.validated_data["step"],
            comment=ser.validated_data["comment"],
        )
        return Response(ApprovalSerializer(approval).data)

    @extend_schema(request=DecisionSerializer, responses={200: ApprovalSerializer})
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        """Approve the run's pending ``approval:`` step (members of its squad, org admins)."""
        return self._decide(request, True)

    @extend_schema(request=DecisionSerializer, responses={200: ApprovalSerializer})
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        """Reject the run's pending ``approval:`` step: the step fails."""
        return self._decide(request, False)

    @extend_schema(request=None, responses={202: PipelineRunSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        run = services.cancel_run(self.get_object(), actor=Actor.from_request(request, door="api"))
        return Response(PipelineRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={201: PipelineRunSerializer})
    @action(detail=True, methods=["post"])
    def rerun(self, request, pk=None):
        new = services.rerun_run(
            self.get_object(),
            actor=Actor.from_request(request, door="api"),
            idempotency_key=_idem(request),
        )
        return Response(PipelineRunSerializer(new).data, status=status.HTTP_201_CREATED)


class ServiceRunsView(generics.ListAPIView):
    """``GET``: runs of one service. ``POST``: trigger a run (body: ``ref``, optional ``commit``)."""

    serializer_class = PipelineRunSerializer
    filterset_class = PipelineRunFilter
    ordering_fields = ["created_at", "number", "finished_at"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return PipelineRun.objects.none()
        service = get_object_or_404(Service, slug=self.kwargs["slug"])
        return PipelineRun.objects.filter(service=service).select_related("service__owner")

    @extend_schema(
        request=TriggerSerializer,
        responses={201: PipelineRunSerializer, 200: PipelineRunSerializer},
        description="201 with the new run; 200 with the existing run on an idempotent repeat.",
    )
    def post(self, request, slug):
        service = get_object_or_404(Service.objects.select_related("owner"), slug=slug)
        ser = TriggerSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        run, created = services.trigger_run(
            service,
            actor=Actor.from_request(request, door="api"),
            ref=ser.validated_data["ref"],
            commit=ser.validated_data["commit"],
            trigger=PipelineRun.Trigger.API,
            idempotency_key=_idem(request),
        )
        return Response(
            PipelineRunSerializer(run).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class ServiceSecretsView(APIView):
    """Pipeline secrets of a service: names only; values are write-only."""

    @extend_schema(responses=PipelineSecretSerializer(many=True))
    def get(self, request, slug):
        service = get_object_or_404(Service, slug=slug)
        secrets = PipelineSecret.objects.filter(service=service)
        return Response(PipelineSecretSerializer(secrets, many=True).data)

    @extend_schema(request=PipelineSecretSerializer, responses={201: PipelineSecretSerializer})
    def post(self, request, slug):
        service = get_object_or_404(Service.objects.select_related("owner"), slug=slug)
        ser = PipelineSecretSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        secret = services.set_secret(
            service,
            actor=Actor.from_request(request, door="api"),
            name=ser.validated_data["name"],
            value=ser.validated_data["value"],
        )
        return Response(PipelineSecretSerializer(secret).data, status=status.HTTP_201_CREATED)


class ServiceSecretDetailView(APIView):
    @extend_schema(request=None, responses={204: None})
    def delete(self, request, slug, name):
        service = get_object_or_404(Service.objects.select_related("owner"), slug=slug)
        if not services.delete_secret(
            service, actor=Actor.from_request(request, door="api"), name=name
        ):
            return Response(
                {"code": "not_found", "message": f"No secret named {name!r} on {slug}."},
                status=status.HTTP_404_NOT_FOUND,
            )
        return Response(status=status.HTTP_204_NO_CONTENT)


class ServiceSpecView(APIView):
    """The pipeline spec stored in the portal (used when the repository has no backline.yml)."""

    @extend_schema(responses=SpecSerializer)
    def get(self, request, slug):
        service = get_object_or_404(Service, slug=slug)
        config = PipelineConfig.objects.filter(service=service).first()
        return Response({"spec": config.spec_yaml if config else ""})

    @extend_schema(request=SpecSerializer, responses=SpecSerializer)
    def put(self, request, slug):
        service = get_object_or_404(Service.objects.select_related("owner"), slug=slug)
        ser = SpecSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        config = services.save_spec(
            service, actor=Actor.from_request(request, door="api"), text=ser.validated_data["spec"]
        )
        return Response({"spec": config.spec_yaml})


class ServiceCIRunsView(APIView):
    """``GET``: the service's recent GitHub Actions runs and Jenkins builds, as beat last
    read them (``error``: what went wrong on the last read of GitHub; the runs are the last
    good read's)."""

    @extend_schema(responses=CIRunsSerializer)
    def get(self, request, slug):
        service = get_object_or_404(Service, slug=slug)
        runs, poll = actions.recent(service, limit=50)
        body = {
            "repository": actions.repository(service),
            "polled_at": poll.polled_at if poll else None,
            "ok_at": poll.ok_at if poll else None,
            "error": poll.error if poll else "",
            "github_actions": runs,
            "jenkins_job": jenkins.service_job(service),
            "jenkins": JenkinsBuild.objects.filter(service=service)[:50],
        }
        return Response(CIRunsSerializer(body).data)
