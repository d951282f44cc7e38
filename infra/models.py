"""Terraform workspaces, their variables, and runs (plan → confirm → apply) with their logs."""

import re

from django.conf import settings
from django.core.validators import MaxLengthValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone

from infra.tfstate import default_backend, new_state_key
from portal.cachegen import WatchedQuerySet
from portal.fields import CredentialURLField, EncryptedTextField
from portal.jobs import LogChunkBase, LoggedJob, log_chunk_meta

FILENAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}\.(tf|tf\.json|tfvars)$")
VAR_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,127}$")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# Environment variables Backline sets itself for every terraform invocation.
RESERVED_ENV = {
    "PATH",
    "HOME",
    "TF_DATA_DIR",
    "TF_IN_AUTOMATION",
    "TF_INPUT",
    "CHECKPOINT_DISABLE",
    "TF_FORK",
    "PGPASSWORD",
    "PG_CONN_STR",
    "TF_CLI_ARGS",
    "TF_CLI_ARGS_plan",
    "TF_CLI_ARGS_apply",
    "TF_CLI_ARGS_init",
    "TF_CLI_ARGS_show",
}


class RunStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PLANNING = "planning", "Planning"
    PLANNED = "planned", "Planned"
    PLANNED_AND_FINISHED = "planned_and_finished", "Planned and finished"
    CONFIRMED = "confirmed", "Confirmed"
    APPLYING = "applying", "Applying"
    APPLIED = "applied", "Applied"
    DISCARDED = "discarded", "Discarded"
    ERRORED = "errored", "Errored"
    CANCELED = "canceled", "Canceled"


TERMINAL = (
    RunStatus.PLANNED_AND_FINISHED,
    RunStatus.APPLIED,
    RunStatus.DISCARDED,
    RunStatus.ERRORED,
    RunStatus.CANCELED,
)
EXECUTING = (RunStatus.PLANNING, RunStatus.APPLYING)
ACTIVE = (
    RunStatus.PENDING,
    RunStatus.PLANNING,
    RunStatus.PLANNED,
    RunStatus.CONFIRMED,
    RunStatus.APPLYING,
)


class DriftStatus(models.TextChoices):
    UNKNOWN = "unknown", "Not checked"
    NONE = "none", "No drift"
    DRIFTED = "drifted", "Drifted"
    ERROR = "error", "Check failed"


class Workspace(models.Model):
    class Source(models.TextChoices):
        STORED = "stored", "Configuration stored in Backline"
        GIT = "git", "Git repository"

    class Backend(models.TextChoices):
        PG = "pg", "State in Backline's PostgreSQL (pg backend)"
        LOCAL = "local", "State file on the worker's disk (local backend)"
        CONFIGURED = "configured", "Backend configured in the Terraform code"

    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        "squads.Squad",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="terraform_workspaces",
    )
    services = models.ManyToManyField(
        "squads.Service", blank=True, related_name="terraform_workspaces"
    )
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.STORED)
    files = models.JSONField(
        default=dict, blank=True, help_text="Stored configuration: {filename: content}"
    )
    # credentials in it (https://user:token@host/…) are encrypted at rest, shown as ****
    repository_url = CredentialURLField(
        max_length=1000, blank=True, validators=[MaxLengthValidator(500)]
    )
    ref = models.CharField(max_length=255, blank=True, default="main")
    path = models.CharField(max_length=500, blank=True, help_text="Directory inside the repo")
    terraform_bin = models.CharField(
        max_length=500, blank=True, help_text="Empty: the TERRAFORM_BIN setting"
    )
    backend = models.CharField(max_length=12, choices=Backend.choices, default=default_backend)
    # where the state lives (pg schema, local folder): random, never reused by another workspace
    state_key = models.CharField(max_length=40, unique=True, default=new_state_key, editable=False)
    # local-exec / remote-exec provisioners are refused at plan unless an org admin allows them
    allow_provisioners = models.BooleanField(default=False)
    auto_apply = models.BooleanField(default=False)
    drift_checks = models.BooleanField(default=True)
    drift_interval_minutes = models.PositiveIntegerField(default=60)

    lock_run = models.ForeignKey(
        "TerraformRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    locked_at = models.DateTimeField(null=True, blank=True)

    state_serial = models.BigIntegerField(null=True, blank=True)
    state_lineage = models.CharField(max_length=100, blank=True)
    outputs = models.JSONField(default=dict, blank=True, help_text="Sensitive values are hidden")
    last_applied_at = models.DateTimeField(null=True, blank=True)

    drift_status = models.CharField(
        max_length=10, choices=DriftStatus.choices, default=DriftStatus.UNKNOWN
    )
    drift_checked_at = models.DateTimeField(null=True, blank=True)
    drift_summary = models.JSONField(default=list, blank=True)
    drift_run = models.ForeignKey(
        "TerraformRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = WatchedQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("infra:workspace_detail", args=[self.slug])

    @property
    def binary(self) -> str:
        return self.terraform_bin or settings.TERRAFORM_BIN


class Variable(models.Model):
    class Category(models.TextChoices):
        TERRAFORM = "terraform", "Terraform variable"
        ENV = "env", "Environment variable"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="variables")
    key = models.CharField(max_length=128)
    value = EncryptedTextField(blank=True)  # encrypted at rest, sensitive or not
    category = models.CharField(max_length=10, choices=Category.choices, default=Category.TERRAFORM)
    sensitive = models.BooleanField(default=False)
    description = models.CharField(max_length=300, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["category", "key"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "category", "key"], name="infra_variable_unique"
            )
        ]

    def __str__(self):
        return f"{self.key} ({self.category})"


class TerraformRun(LoggedJob):
    class Kind(models.TextChoices):
        PLAN = "plan", "Plan and apply"
        DRIFT = "drift", "Drift check (refresh-only)"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="runs")
    number = models.PositiveIntegerField()
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.PLAN)
    status = models.CharField(
        max_length=24, choices=RunStatus.choices, default=RunStatus.PENDING, db_index=True
    )
    message = models.CharField(max_length=300, blank=True)
    trigger = models.CharField(max_length=16, default="ui")
    created_by = models.CharField(max_length=200, blank=True)
    created_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    auto_apply = models.BooleanField(default=False)

    has_changes = models.BooleanField(null=True)
    summary = models.JSONField(default=dict, blank=True)
    diagnostics = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    lost = models.BooleanField(default=False)
    discard_reason = models.TextField(blank=True)

    state_serial_at_plan = models.BigIntegerField(null=True, blank=True)
    state_lineage_at_plan = models.CharField(max_length=100, blank=True)

    # cancel_requested, worker, heartbeat_at, log_size, created_at, finished_at: LoggedJob
    enqueued_at = models.DateTimeField(null=True, blank=True)

    started_at = None  # two phases: plan_started_at and apply_started_at
    plan_started_at = models.DateTimeField(null=True, blank=True)
    planned_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    confirmed_by = models.CharField(max_length=200, blank=True)
    apply_started_at = models.DateTimeField(null=True, blank=True)

    finished_statuses = TERMINAL
    running_statuses = EXECUTING

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "number"], name="infra_run_number_unique")
        ]
        indexes = [models.Index(fields=["workspace", "status"])]

    def __str__(self):
        return f"{self.workspace.slug} run #{self.number}"

    def get_absolute_url(self):
        return reverse("infra:run_detail", args=[self.pk])

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    @property
    def duration(self):
        start = self.plan_started_at
        if not start:
            return None
        end = self.finished_at or (None if not self.is_over else self.planned_at)
        end = end or timezone.now()
        return (end - start).total_seconds()


class LogChunk(LogChunkBase):
    """A piece of a run's log (``portal.jobs.LogChunkBase``)."""

    run = models.ForeignKey(TerraformRun, on_delete=models.CASCADE, related_name="log_chunks")
    Meta = log_chunk_meta("infra_log_chunk_unique")


class SavedPlan(models.Model):
    """A run's saved plan file (``terraform plan -out``), kept so that any worker can apply it:
    the worker that planned may be another host, or gone with its disk."""

    run = models.OneToOneField(
        TerraformRun, primary_key=True, on_delete=models.CASCADE, related_name="saved_plan"
    )
    data = models.BinaryField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
