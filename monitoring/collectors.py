"""Backline's own /metrics, the parts read from the database at scrape time (each app
registers a function yielding its families, ``portal.registry.collector``; the base's
``portal.collectors.DatabaseCollector`` serves them all).

Counters incremented in memory (``portal.metrics``) only count what the *web* process did;
pipeline runs finish in Celery workers and alerts change in beat, so those figures are read
from the rows when /metrics is scraped (cheap aggregate queries), which is correct whatever
process did the work:

- from the apps that register collectors (``portal.registry.collector``):
  ``backline_pipeline_runs_finished_total{status}`` and ``backline_pipeline_run_seconds``
  (sum/count of finished runs' durations, ``pipelines.collectors``),
  ``backline_release_status_changes_total{to}`` (release transitions recorded in the release
  timelines, ``releases.collectors``),
- ``backline_alerts{state,severity}`` (pending/firing now), ``backline_alert_deliveries_total
  {status}``, ``backline_scrape_targets{health}``, ``backline_builtin_series``.
"""

from django.db.models import Count
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from metrics.models import ScrapeTarget, Series
from monitoring.models import Alert, Delivery


def monitoring_families():
    alerts = GaugeMetricFamily(
        "backline_alerts", "Alerts pending or firing now", labels=["state", "severity"]
    )
    for row in (
        Alert.objects.filter(state__in=[Alert.State.PENDING, Alert.State.FIRING])
        .values("state", "severity")
        .annotate(n=Count("id"))
        .order_by()
    ):
        alerts.add_metric([row["state"], row["severity"]], row["n"])
    yield alerts
    deliveries = CounterMetricFamily(
        "backline_alert_deliveries", "Alert notifications by status", labels=["status"]
    )
    rows = Delivery.objects.values("outbound__status").annotate(n=Count("id")).order_by()
    for row in rows:
        deliveries.add_metric([row["outbound__status"] or "pending"], row["n"])
    yield deliveries
    targets = GaugeMetricFamily(
        "backline_scrape_targets", "Builtin backend scrape targets by health", labels=["health"]
    )
    for row in ScrapeTarget.objects.values("health").annotate(n=Count("id")).order_by():
        targets.add_metric([row["health"]], row["n"])
    yield targets
    yield GaugeMetricFamily(
        "backline_builtin_series",
        "Series stored by the builtin backend",
        value=Series.objects.count(),
    )
