"""Metrics storage of the builtin backend: scrape targets, series and samples.

Moved here from ``monitoring`` (same tables, ``monitoring_*``), so the backends that read them
sit below every app that asks for metrics.

Sample storage: one narrow row per (series, scrape time) with a composite
primary key, no surrogate id. Counter-like samples (counters, histogram buckets/counts/sums)
are stored *reset-adjusted*: when a scrape sees a raw value lower than the previous one (the
process restarted), the previous raw value is added to the series' ``offset`` and every later
sample is stored as ``raw + offset``; ``Series.resets`` records each new offset and when it
began, so the exposed value is recovered as ``stored - offset`` (PromQL's instant selectors). A changed ``<name>_created`` timestamp (prometheus_client
exposes one per counter/histogram child) is a reset too, even when the new value is higher.
Stored counters are therefore monotonic, so a rate over any window needs only the first and
last sample in the window, and range queries can be downsampled in SQL by taking the last
sample per step bucket (``MAX(value)``).
"""

from django.db import connection, models

from squads.models import Service


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
    next_scrape_at = models.DateTimeField(null=True, blank=True, db_index=True)  # None: now

    class Meta:
        db_table = "monitoring_scrapetarget"
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
    # [[t, offset], ...]: the offset added to samples from t on (one entry per reset), so the
    # value the target exposed is ``stored - offset`` (instant selectors, rate's zero point)
    resets = models.JSONField(default=list, blank=True)

    class Meta:
        db_table = "monitoring_series"
        verbose_name_plural = "series"
        constraints = [
            models.UniqueConstraint(fields=["target", "name", "key"], name="series_unique")
        ]
        indexes = [models.Index(fields=["service", "name"], name="monitoring__service_16d55d_idx")]

    def __str__(self):
        return f"{self.name}{{{self.key}}}"


class Sample(models.Model):
    """One value of one series at one scrape (``t`` in Unix seconds)."""

    pk = models.CompositePrimaryKey("series_id", "t")
    series = models.ForeignKey(Series, on_delete=models.DO_NOTHING, db_constraint=False)
    t = models.FloatField()
    value = models.FloatField()

    class Meta:
        db_table = "monitoring_sample"

    # No index besides the primary key (series_id, t): range reads and retention purges both
    # go through it, one series batch at a time.


def drop_samples(sender, instance, **kwargs):
    """Samples have no foreign-key constraint (cheap inserts); remove them with their series
    (``post_delete`` of ``Series``, connected in ``MetricsConfig.ready``)."""
    with connection.cursor() as cur:
        cur.execute(f"DELETE FROM {Sample._meta.db_table} WHERE series_id = %s", [instance.pk])
