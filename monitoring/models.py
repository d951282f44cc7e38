"""Monitoring: alert rules, alerts, notification channels and their delivery log.

Scraped series and samples (the builtin backend's storage) live in ``metrics.models``.
"""

from django.core.validators import MaxLengthValidator, URLValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from monitoring.charts import format_value
from portal.cachegen import WatchedQuerySet
from portal.fields import EncryptedTextField
from squads.models import Service, Squad

TRACKS = ("stable", "canary")
SIGNALS = ("request_rate", "error_ratio", "p50", "p95", "p99")
SIGNAL_LABELS = {
    "request_rate": ("Request rate", "req/s"),
    "error_ratio": ("Error ratio", "%"),
    "p50": ("Latency p50", "s"),
    "p95": ("Latency p95", "s"),
    "p99": ("Latency p99", "s"),
}


class Severity(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


class AlertRule(models.Model):
    COMPARISONS = [(">", ">"), (">=", "≥"), ("<", "<"), ("<=", "≤")]

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="alert_rules")
    name = models.CharField(max_length=200)
    signal = models.CharField(
        max_length=20, blank=True, choices=[(s, SIGNAL_LABELS[s][0]) for s in SIGNALS]
    )
    query = models.TextField(blank=True, help_text="Raw query instead of a golden signal")
    track = models.CharField(max_length=20, default="stable")
    comparison = models.CharField(max_length=2, choices=COMPARISONS, default=">")
    threshold = models.FloatField()
    window_seconds = models.PositiveIntegerField(default=60)
    for_seconds = models.PositiveIntegerField(default=0)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    last_value = models.FloatField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    objects = WatchedQuerySet.as_manager()

    class Meta:
        ordering = ["service__name", "name"]
        # the evaluator's due query (``monitoring.evaluate``): enabled rules by last evaluation
        indexes = [
            models.Index(
                fields=["last_evaluated_at"], condition=Q(enabled=True), name="alertrule_due_idx"
            )
        ]

    def __str__(self):
        return f"{self.service.slug}: {self.name}"

    @property
    def expression(self):
        what = self.query or f"{self.signal}{{track={self.track}}}"
        return f"{what} {self.comparison} {self.threshold:g}"

    def format(self, value) -> str:
        """A value of this rule's signal with its unit ("no data" for None)."""
        if value is None:
            return "no data"
        if self.signal:
            return format_value(value, SIGNAL_LABELS[self.signal][1])
        return f"{value:.4g}"

    @property
    def last_value_text(self):
        return self.format(self.last_value)

    def matches(self, value):
        if value is None:
            return False
        return {
            ">": value > self.threshold,
            ">=": value >= self.threshold,
            "<": value < self.threshold,
            "<=": value <= self.threshold,
        }[self.comparison]


class Alert(models.Model):
    """One episode of a rule's condition: pending → firing → resolved."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        FIRING = "firing", "Firing"
        RESOLVED = "resolved", "Resolved"

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="alerts")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    severity = models.CharField(max_length=10, choices=Severity.choices)
    started_at = models.DateTimeField(default=timezone.now)
    fired_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    value = models.FloatField(null=True, blank=True)  # value when it started firing
    last_value = models.FloatField(null=True, blank=True)
    summary = models.CharField(max_length=500, blank=True)

    objects = WatchedQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["state", "service"])]
        constraints = [
            models.UniqueConstraint(
                fields=["rule"],
                condition=models.Q(state__in=["pending", "firing"]),
                name="alert_one_active_per_rule",
            )
        ]

    def __str__(self):
        return f"{self.rule.name} ({self.state})"

    @property
    def value_text(self):
        return self.rule.format(self.value)


class AlertEvent(models.Model):
    """History of an alert's transitions."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(default=timezone.now)
    from_state = models.CharField(max_length=10, blank=True)
    to_state = models.CharField(max_length=10)
    value = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["at", "pk"]

    @property
    def value_text(self):
        return self.alert.rule.format(self.value)


class NotificationChannel(models.Model):
    class Kind(models.TextChoices):
        SLACK = "slack", "Slack-compatible incoming webhook"
        WEBHOOK = "webhook", "Generic signed webhook"

    squad = models.ForeignKey(Squad, on_delete=models.CASCADE, related_name="alert_channels")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    # a Slack incoming-webhook URL is a credential: encrypted at rest, never shown back whole
    url = EncryptedTextField(validators=[URLValidator(), MaxLengthValidator(500)])
    secret = EncryptedTextField(blank=True, validators=[MaxLengthValidator(200)])
    min_severity = models.CharField(max_length=10, choices=Severity.choices, default="info")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["squad__name", "name"]

    def __str__(self):
        return f"{self.name} ({self.kind})"


class Delivery(models.Model):
    """One notification of one alert transition to one channel, with its attempts."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RETRYING = "retrying", "Retrying"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(
        NotificationChannel, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.CharField(max_length=10)  # firing | resolved
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    # the outbound delivery (portal.outbound): status, attempts, answers
    outbound = models.OneToOneField(
        "portal.EventDelivery",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="alert_notification",
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "deliveries"

    @property
    def status(self):
        return self.outbound.status if self.outbound else self.Status.PENDING

    @property
    def attempts(self):
        return self.outbound.attempts if self.outbound else 0

    @property
    def response_code(self):
        return self.outbound.last_status_code if self.outbound else None

    @property
    def last_error(self):
        return self.outbound.last_error if self.outbound else ""

    @property
    def delivered_at(self):
        return self.outbound.delivered_at if self.outbound else None
