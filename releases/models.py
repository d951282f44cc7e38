"""Releases: a version of a service going to an environment through a canary strategy.

Release: pending → progressing (step i, weight w) ⇄ paused → succeeded; → aborted (traffic
back to stable); → failed (analysis failed, automatic rollback).
AnalysisRun: pending → running → successful | failed | inconclusive | error.

The controller (``releases.controller``) drives every release from these rows alone:
``weight`` is what the deploy driver last confirmed, ``desired_weight`` what the current step
wants, ``driver_action`` a promote/rollback still owed to the driver after a final transition.
"""

from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from portal.cachegen import WatchedQuerySet
from portal.fields import EncryptedKeysJSONField


class Environment(models.Model):
    class Driver(models.TextChoices):
        LOCAL = "local"
        WEBHOOK = "webhook"
        HAPROXY = "haproxy"
        KUBERNETES = "kubernetes"
        ARGO_ROLLOUTS = "argo-rollouts"

    name = models.SlugField(max_length=50, unique=True)
    title = models.CharField(max_length=100, blank=True)
    order = models.PositiveSmallIntegerField(default=0)
    production = models.BooleanField(default=False)
    driver = models.CharField(max_length=20, choices=Driver.choices, default=Driver.LOCAL)
    # webhook: {"url", "secret", "timeout", "retries"}; local: {} (uses the demo fleet);
    # haproxy: {"socket", "backend", "stable_server", "canary_server"} (releases/haproxy.py)
    driver_config = EncryptedKeysJSONField(default=dict, blank=True, secret_keys=("secret",))
    # steps overriding the built-in default for every service in this environment (or null)
    strategy = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = WatchedQuerySet.as_manager()

    class Meta:
        db_table = "pipelines_environment"
        ordering = ["order", "name"]

    def __str__(self):
        return self.name


class StrategyOverride(models.Model):
    """A service's own canary steps, for one environment or (environment empty) for all."""

    service = models.ForeignKey(
        "squads.Service", on_delete=models.CASCADE, related_name="release_strategies"
    )
    environment = models.ForeignKey(
        Environment, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    steps = models.JSONField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "pipelines_strategyoverride"
        constraints = [
            models.UniqueConstraint(
                fields=["service", "environment"], name="release_strategy_unique"
            ),
            models.UniqueConstraint(
                fields=["service"],
                condition=Q(environment__isnull=True),
                name="release_strategy_unique_any_env",
            ),
        ]

    def __str__(self):
        return f"strategy of {self.service} in {self.environment or 'any environment'}"


class AnalysisTemplate(models.Model):
    """Named list of metrics (see ``releases.analysis`` for the metric fields)."""

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    metrics = models.JSONField(default=list)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "pipelines_analysistemplate"

    def __str__(self):
        return self.name


class ReleaseStatus(models.TextChoices):
    PENDING = "pending"
    PROGRESSING = "progressing"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    ABORTED = "aborted"
    FAILED = "failed"


ACTIVE_RELEASE = (ReleaseStatus.PENDING, ReleaseStatus.PROGRESSING, ReleaseStatus.PAUSED)
FINAL_RELEASE = (ReleaseStatus.SUCCEEDED, ReleaseStatus.ABORTED, ReleaseStatus.FAILED)


class Release(models.Model):
    service = models.ForeignKey("squads.Service", on_delete=models.CASCADE, related_name="releases")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="releases")
    version = models.CharField(max_length=200)
    commit_sha = models.CharField(max_length=64, blank=True)
    strategy = models.JSONField(default=list)
    strategy_source = models.CharField(max_length=20, default="default")
    status = models.CharField(
        max_length=20,
        choices=ReleaseStatus.choices,
        default=ReleaseStatus.PENDING,
        db_index=True,
    )
    step_index = models.PositiveIntegerField(default=0)
    weight = models.PositiveSmallIntegerField(default=0)  # confirmed by the driver
    desired_weight = models.PositiveSmallIntegerField(default=0)
    generation = models.PositiveIntegerField(default=1)  # bumped by retry: fresh analyses
    pause_until = models.DateTimeField(null=True, blank=True)
    message = models.TextField(blank=True)  # why it is paused / failed / aborted
    driver_action = models.CharField(max_length=20, blank=True)  # "", "promote", "rollback"
    # the deploy-driver call the release waits for ({"id", "action", "weight", "at"}; {} = none):
    # recorded in the row's transaction, made after commit, cleared when the driver confirms
    driver_call = models.JSONField(default=dict, blank=True)
    driver_error = models.TextField(blank=True)
    driver_failures = models.PositiveIntegerField(default=0)
    # what the deployer reports (drivers that observe: kubernetes, argo-rollouts, haproxy):
    # {"weight", "healthy", "detail", "at"}, refreshed by beat and after each driver call
    observed = models.JSONField(default=dict, blank=True)
    deploy_params = models.JSONField(default=dict, blank=True)
    started_by = models.CharField(max_length=200, blank=True)
    trigger = models.CharField(max_length=20, default="api")  # ui | api | pipeline | demo
    pipeline_run = models.ForeignKey(
        "pipelines.PipelineRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="releases",
    )
    next_tick_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = WatchedQuerySet.as_manager()

    class Meta:
        db_table = "pipelines_release"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["service", "environment"],
                condition=Q(status__in=["pending", "progressing", "paused"]),
                name="release_one_active_per_env",
            )
        ]
        # the controller's due query (``controller.due``): active or owed releases only
        indexes = [
            models.Index(
                fields=["next_tick_at"],
                condition=Q(status__in=["pending", "progressing", "paused"]) | ~Q(driver_action=""),
                name="release_due_idx",
            )
        ]

    def __str__(self):
        return f"{self.service.slug} {self.version} → {self.environment.name}"

    def get_absolute_url(self):
        return reverse("releases:release_detail", args=[self.pk])

    @property
    def is_active(self):
        return self.status in ACTIVE_RELEASE

    @property
    def applying(self) -> bool:
        """A driver call is wanted and not yet confirmed (the page shows "applying")."""
        return bool(self.driver_call)

    @property
    def current_step(self):
        if 0 <= self.step_index < len(self.strategy or []):
            return self.strategy[self.step_index]
        return None

    @property
    def uses_canary_analysis(self) -> bool:
        steps = self.strategy or []
        return any("analysis" in s for s in steps) and any(
            0 < (s.get("set_weight") or 0) < 100 for s in steps if "set_weight" in s
        )


class ReleaseEvent(models.Model):
    """The release's timeline: transitions, weight changes, analysis results, driver errors."""

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=30)  # status | weight | analysis | driver | action
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20, blank=True)
    step_index = models.IntegerField(null=True, blank=True)
    weight = models.IntegerField(null=True, blank=True)
    message = models.TextField(blank=True)
    actor = models.CharField(max_length=200, blank=True)
    door = models.CharField(max_length=20, blank=True)

    class Meta:
        db_table = "pipelines_releaseevent"
        ordering = ["at", "id"]


class AnalysisStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    SUCCESSFUL = "successful"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"


class AnalysisRun(models.Model):
    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="analysis_runs")
    generation = models.PositiveIntegerField(default=1)
    step_index = models.PositiveIntegerField()
    weight = models.PositiveSmallIntegerField(default=0)
    template = models.CharField(max_length=100)
    metrics = models.JSONField(default=list)  # resolved metric definitions
    status = models.CharField(
        max_length=20, choices=AnalysisStatus.choices, default=AnalysisStatus.PENDING
    )
    message = models.TextField(blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    next_measure_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "pipelines_analysisrun"
        ordering = ["started_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["release", "generation", "step_index"], name="analysis_run_unique_step"
            )
        ]

    def __str__(self):
        return f"analysis {self.template} of release {self.release_id} step {self.step_index}"


class Measurement(models.Model):
    """One measurement of one metric: canary and stable values, threshold, verdict."""

    analysis_run = models.ForeignKey(
        AnalysisRun, on_delete=models.CASCADE, related_name="measurements"
    )
    metric = models.CharField(max_length=100)
    index = models.PositiveIntegerField()
    at = models.DateTimeField(default=timezone.now)
    phase = models.CharField(max_length=20)  # successful | failed | inconclusive | error
    value = models.FloatField(null=True, blank=True)  # canary (or the raw query's result)
    stable_value = models.FloatField(null=True, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    condition = models.CharField(max_length=200, blank=True)
    canary_requests = models.FloatField(null=True, blank=True)
    stable_requests = models.FloatField(null=True, blank=True)
    message = models.TextField(blank=True)

    class Meta:
        db_table = "pipelines_measurement"
        ordering = ["analysis_run", "metric", "index"]
        constraints = [
            models.UniqueConstraint(
                fields=["analysis_run", "metric", "index"], name="measurement_unique_index"
            )
        ]


class ScaleStatus(models.TextChoices):
    APPLIED = "applied"  # the driver confirmed it
    PLANNED = "planned"  # handed to the capacity workspace as a Terraform plan
    FAILED = "failed"


class ScaleEvent(models.Model):
    """One scale action on a service in an environment (by hand, API, schedule): the timeline."""

    service = models.ForeignKey(
        "squads.Service", on_delete=models.CASCADE, related_name="scale_events"
    )
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    replicas = models.PositiveIntegerField()
    previous = models.PositiveIntegerField(null=True, blank=True)
    via = models.CharField(max_length=20)  # the driver's name, or "terraform"
    status = models.CharField(max_length=10, choices=ScaleStatus.choices)
    error = models.TextField(blank=True)
    reason = models.CharField(max_length=300, blank=True)
    schedule = models.ForeignKey(
        "ScaleSchedule", null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    terraform_run_id = models.PositiveIntegerField(null=True, blank=True)
    actor = models.CharField(max_length=200)
    door = models.CharField(max_length=20)
    at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["service", "environment", "-at"])]

    def __str__(self):
        return f"{self.service} ×{self.replicas} in {self.environment} ({self.status})"


class ScaleSchedule(models.Model):
    """A recurring window (cron start + duration, in a timezone) at ``replicas``; outside
    every window of the service in that environment it runs ``base_replicas``."""

    service = models.ForeignKey(
        "squads.Service", on_delete=models.CASCADE, related_name="scale_schedules"
    )
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100, blank=True)
    cron = models.CharField(max_length=100)  # when a window opens, e.g. "0 17 * * 1-5"
    duration_minutes = models.PositiveIntegerField()
    tz = models.CharField("timezone", max_length=64, default="UTC")
    replicas = models.PositiveIntegerField()
    base_replicas = models.PositiveIntegerField()
    enabled = models.BooleanField(default=True)
    created_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["service", "environment", "id"]

    def __str__(self):
        return f"{self.service} {self.cron} +{self.duration_minutes}m ×{self.replicas}"
