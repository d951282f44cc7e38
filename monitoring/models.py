"""Monitoring: scraped series and samples (builtin backend), alert rules, alerts, notification
channels and their delivery log.

Sample storage (builtin backend): one narrow row per (series, scrape time) with a composite
primary key, no surrogate id. Counter-like samples (counters, histogram buckets/counts/sums)
are stored *reset-adjusted*: when a scrape sees a raw value lower than the previous one (the
process restarted), the previous raw value is added to the series' ``offset`` and every later
sample is stored as ``raw + offset``. A changed ``<name>_created`` timestamp (prometheus_client
exposes one per counter/histogram child) is a reset too, even when the new value is higher. Stored counters are therefore monotonic, so a rate over
any window needs only the first and last sample in the window, and range queries can be
downsampled in SQL by taking the last sample per step bucket (``MAX(value)``).
"""

from django.db import models
from django.utils import timezone

from portal.cachegen import WatchedQuerySet
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


class ScrapeTarget(models.Model):
    """One `/metrics` URL of a service (mirrors ``Service.metrics_urls``), with its health."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="scrape_targets")
    url = models.CharField(max_length=500)
    track = models.CharField(max_length=20, blank=True)  # "" = take it from the `track` label
    health = models.CharField(max_length=10, default="unknown")  # up | down | unknown
    last_scrape_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_duration_ms = models.FloatField(null=True, blank=True)
    last_samples = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["service__name", "url"]
        constraints = [
            models.UniqueConstraint(fields=["service", "url"], name="scrapetarget_unique")
        ]

    def __str__(self):
        return self.url


class Series(models.Model):
    """One time series of one target: metric sample name + label set."""

    target = models.ForeignKey(ScrapeTarget, on_delete=models.CASCADE, related_name="series")
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)  # sample name, e.g. http_requests_total
    kind = models.CharField(max_length=20, default="gauge")  # counter | gauge
    labels = models.JSONField(default=dict)
    key = models.CharField(max_length=1000)  # canonical label string
    # denormalised labels used by the golden-signal queries
    track = models.CharField(max_length=20, blank=True, db_index=True)
    code = models.CharField(max_length=10, blank=True)
    le = models.FloatField(null=True, blank=True)
    # reset handling state (counter-like series only)
    last_raw = models.FloatField(null=True, blank=True)
    offset = models.FloatField(default=0)
    last_t = models.FloatField(null=True, blank=True)
    created = models.FloatField(null=True, blank=True)  # the exposition's `_created` timestamp

    class Meta:
        verbose_name_plural = "series"
        constraints = [
            models.UniqueConstraint(fields=["target", "name", "key"], name="series_unique")
        ]
        indexes = [models.Index(fields=["service", "name"])]

    def __str__(self):
        return f"{self.name}{{{self.key}}}"


class Sample(models.Model):
    """One value of one series at one scrape (``t`` in Unix seconds)."""

    pk = models.CompositePrimaryKey("series_id", "t")
    series = models.ForeignKey(Series, on_delete=models.DO_NOTHING, db_constraint=False)
    t = models.FloatField()
    value = models.FloatField()

    # No index besides the primary key (series_id, t): range reads and retention purges both
    # go through it, one series batch at a time.


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

    def __str__(self):
        return f"{self.service.slug}: {self.name}"

    @property
    def expression(self):
        what = self.query or f"{self.signal}{{track={self.track}}}"
        return f"{what} {self.comparison} {self.threshold:g}"

    def format(self, value) -> str:
        """A value of this rule's signal with its unit ("no data" for None)."""
        from monitoring.charts import format_value

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
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=200, blank=True)
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
