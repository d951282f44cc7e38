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

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from metrics.models import ScrapeTarget, Series
from monitoring.models import Alert, Delivery
from portal.collectors import counts


def monitoring_families():
    yield counts(
        GaugeMetricFamily(
            "backline_alerts", "Alerts pending or firing now", labels=["state", "severity"]
        ),
        Alert.objects.filter(state__in=[Alert.State.PENDING, Alert.State.FIRING]),
        "state",
        "severity",
    )
    yield counts(
        CounterMetricFamily(
            "backline_alert_deliveries", "Alert notifications by status", labels=["status"]
        ),
        Delivery.objects.all(),
        "outbound__status",
        default="pending",
    )
    yield counts(
        GaugeMetricFamily(
            "backline_scrape_targets", "Builtin backend scrape targets by health", labels=["health"]
        ),
        ScrapeTarget.objects.all(),
        "health",
    )
    yield GaugeMetricFamily(
        "backline_builtin_series",
        "Series stored by the builtin backend",
        value=Series.objects.count(),
    )
