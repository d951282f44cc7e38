"""Pipelines: specs stored in the portal, secrets, runs, steps and their logs.

PipelineRun / StepRun: queued → running → succeeded | failed | canceled | timed_out | lost;
running ⇄ waiting while an ``approval:`` step waits for a decision (no worker holds it).
"""

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from portal.cachegen import WatchedQuerySet
from portal.fields import EncryptedTextField
from portal.jobs import Job, LogChunkBase, LoggedJob, log_chunk_meta


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    TIMED_OUT = "timed_out"
    LOST = "lost"
    WAITING = "waiting"  # parked at an approval step: no worker holds it (pipelines.approvals)


ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING)
FINISHED_STATUSES = tuple(s for s in RunStatus.values if s not in ACTIVE_STATUSES)


class PipelineConfig(models.Model):
    """The spec edited in the portal, used when the repository has no ``backline.yml``."""

    service = models.OneToOneField(
        "squads.Service", on_delete=models.CASCADE, related_name="pipeline_config"
    )
    spec_yaml = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=200, blank=True)
    # the branch filters of the last spec seen (repository or portal); the webhook uses them to
    # decide quickly, before any checkout, whether a push starts a run
    known_branches = models.JSONField(null=True, blank=True)
    # likewise its ``schedules:`` (pipelines.schedules), which beat starts runs from
    known_schedules = models.JSONField(null=True, blank=True)

    objects = WatchedQuerySet.as_manager()

    def __str__(self):
        return f"pipeline spec of {self.service}"


class PipelineSecret(models.Model):
    """A value handed to steps as an environment variable; write-only, masked in every log."""

    service = models.ForeignKey(
        "squads.Service", on_delete=models.CASCADE, related_name="pipeline_secrets"
    )
    name = models.CharField(max_length=100)
    value = EncryptedTextField()  # encrypted at rest (portal.crypto)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["service", "name"], name="pipeline_secret_unique_name")
        ]

    def __str__(self):
        return f"{self.service.slug}:{self.name}"


class PipelineRun(LoggedJob):
    class Trigger(models.TextChoices):
        PUSH = "push"
        MANUAL = "manual"
        API = "api"
        RERUN = "rerun"
        PULL_REQUEST = "pull_request"
        SCHEDULE = "schedule"

    service = models.ForeignKey(
        "squads.Service", on_delete=models.CASCADE, related_name="pipeline_runs"
    )
    number = models.PositiveIntegerField(default=0)
    status = models.CharField(
        max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True
    )
    ref = models.CharField(max_length=255, blank=True, db_index=True)
    commit_sha = models.CharField(max_length=64, blank=True)
    requested_commit = models.CharField(max_length=64, blank=True)
    commit_message = models.TextField(blank=True)
    commit_author = models.CharField(max_length=200, blank=True)
    trigger = models.CharField(max_length=20, choices=Trigger.choices, default=Trigger.MANUAL)
    triggered_by = models.CharField(max_length=200, blank=True)
    rerun_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns"
    )
    delivery_id = models.CharField(max_length=100, null=True, blank=True)
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)
    spec_source = models.CharField(max_length=20, blank=True)  # repository | portal
    spec = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    # cancel_requested, worker, heartbeat_at, log_size, created/started/finished_at: LoggedJob

    objects = WatchedQuerySet.as_manager()
    finished_statuses = FINISHED_STATUSES
    running_statuses = (RunStatus.RUNNING,)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["service", "-created_at"]),
            # each service's last run (the catalog's column): one index entry per service
            models.Index(fields=["service", "-id"], name="pipelines_run_service_last"),
            models.Index(fields=["status", "heartbeat_at"]),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["service", "delivery_id"], name="pipeline_run_unique_delivery"
            ),
            models.UniqueConstraint(
                fields=["service", "idempotency_key"], name="pipeline_run_unique_idem_key"
            ),
        ]

    def __str__(self):
        return f"{self.service.slug} #{self.number or self.pk}"

    def get_absolute_url(self):
        return reverse("pipelines:run_detail", args=[self.pk])

    @property
    def short_sha(self) -> str:
        return (self.commit_sha or self.requested_commit)[:10]


# a job of a ``jobs:`` pipeline: a run's statuses, and skipped (a job it needs did not succeed)
JobStatus = models.TextChoices(  # type: ignore[misc]
    "JobStatus", [(s.name, s.value) for s in RunStatus] + [("SKIPPED", "skipped")]
)


class JobRun(LoggedJob):
    """One job (one matrix combination) of a run with ``jobs:``, executed by its own Celery task
    with its own checkout and log. ``heartbeat_at`` of a queued job: when it was sent to the
    broker (null: waiting for its needs)."""

    run = models.ForeignKey(PipelineRun, on_delete=models.CASCADE, related_name="jobs")
    index = models.PositiveIntegerField(default=0)
    name = models.CharField(max_length=100)
    base = models.CharField(max_length=100)  # the job's name in the spec (matrix: shared)
    needs = models.JSONField(default=list)  # names of the expanded jobs it waits for
    matrix = models.JSONField(default=dict)
    status = models.CharField(
        max_length=20, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True
    )
    error = models.TextField(blank=True)

    objects = WatchedQuerySet.as_manager()
    finished_statuses = tuple(s for s in JobStatus.values if s not in ACTIVE_STATUSES)
    running_statuses = (JobStatus.RUNNING,)

    class Meta:
        ordering = ["run", "index"]
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="job_run_unique")]

    def __str__(self):
        return f"{self.run} / {self.name}"


class JobLogChunk(LogChunkBase):
    """A piece of a job's log (``portal.jobs.LogChunkBase``)."""

    run = models.ForeignKey(JobRun, on_delete=models.CASCADE, related_name="log_chunks")
    Meta = log_chunk_meta("job_log_chunk_unique_offset")


class StepRun(Job):
    run = models.ForeignKey(PipelineRun, on_delete=models.CASCADE, related_name="steps")
    # a step of a job (``jobs:`` form): its log range is in the job's log, not the run's
    job = models.ForeignKey(
        JobRun, null=True, blank=True, on_delete=models.CASCADE, related_name="steps"
    )
    stage = models.CharField(max_length=100)
    stage_index = models.PositiveIntegerField(default=0)
    index = models.PositiveIntegerField(default=0)
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, default="run")  # room for deploy / canary stages
    command = models.TextField(blank=True)
    timeout = models.FloatField(null=True, blank=True)
    status = models.CharField(
        max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True
    )
    exit_code = models.IntegerField(null=True, blank=True)
    # its part of the run log: [log_offset, log_end); log_end is set when the step is over
    log_offset = models.BigIntegerField(null=True, blank=True)
    log_end = models.BigIntegerField(null=True, blank=True)
    truncated = models.BooleanField(default=False)
    output_bytes = models.BigIntegerField(default=0)
    created_at = None  # type: ignore[assignment]  # a step is created with its run
    error = models.CharField(max_length=300, blank=True)  # e.g. the sandbox limit that ended it

    finished_statuses = FINISHED_STATUSES

    class Meta:
        ordering = ["run", "index"]
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="step_run_unique")]

    def __str__(self):
        return f"{self.stage}/{self.name}"


class Artifact(models.Model):
    """The files a job kept (``artifacts:``), one gzipped tar in the artifact store
    (``pipelines.artifacts``) under ``key``, until ``expires_at``."""

    run = models.ForeignKey(PipelineRun, on_delete=models.CASCADE, related_name="artifacts")
    job = models.ForeignKey(
        JobRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="artifacts"
    )
    name = models.CharField(max_length=100)  # the job's name
    key = models.CharField(max_length=300, unique=True)
    size = models.BigIntegerField(default=0)  # of the archive
    content_bytes = models.BigIntegerField(default=0)  # of the files in it
    files = models.PositiveIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["run", "name"]

    def __str__(self):
        return f"{self.run} / {self.name}.tar.gz"


class Approval(models.Model):
    """An ``approval:`` step waiting for a member of ``squad`` to approve or reject it
    (``pipelines.approvals``)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"
        TIMED_OUT = "timed_out"
        CANCELED = "canceled"

    run = models.ForeignKey(PipelineRun, on_delete=models.CASCADE, related_name="approvals")
    step = models.OneToOneField(StepRun, on_delete=models.CASCADE, related_name="approval")
    squad = models.ForeignKey("squads.Squad", on_delete=models.CASCADE, related_name="+")
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    requested_at = models.DateTimeField(default=timezone.now)
    deadline = models.DateTimeField(null=True, blank=True)
    decided_by = models.CharField(max_length=200, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    comment = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["run", "step__index"]

    def __str__(self):
        return f"approval of {self.step} ({self.status})"


class JenkinsBuild(models.Model):
    """A build of a service's Jenkins job (``jenkins.io/job-full-name``), as beat last saw it
    (``pipelines.jenkins.sync_builds``): counted by the scorecard and DORA."""

    service = models.ForeignKey(
        "squads.Service", on_delete=models.CASCADE, related_name="jenkins_builds"
    )
    job = models.CharField(max_length=300)
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=20)  # success, failure, unstable, aborted, running
    started_at = models.DateTimeField(null=True, blank=True)
    duration = models.FloatField(default=0)
    commit = models.CharField(max_length=64, blank=True)
    url = models.URLField(max_length=500, blank=True)

    objects = WatchedQuerySet.as_manager()

    class Meta:
        ordering = ["service", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["service", "job", "number"], name="jenkins_build_unique"
            )
        ]

    def __str__(self):
        return f"{self.job} #{self.number}"


class LogChunk(LogChunkBase):
    """A piece of a run's log (``portal.jobs.LogChunkBase``)."""

    run = models.ForeignKey(PipelineRun, on_delete=models.CASCADE, related_name="log_chunks")
    Meta = log_chunk_meta("log_chunk_unique_offset")


def workspace_root():
    return settings.WORKSPACE_ROOT / "pipelines"


def run_workdir(run_id):
    """Where a run's checkout lives (its jobs' are beside it, ``-job<index>``)."""
    return workspace_root() / "runs" / str(run_id)


# issue 18, in their own module
from pipelines.github.models import ActionsPoll, ActionsRun, GitHubCheck  # noqa: E402,F401
