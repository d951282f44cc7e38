"""Backline's own /metrics, the parts read from the database at scrape time.

Counters incremented in memory (``portal.metrics``) only count what the *web* process did;
pipeline runs finish in Celery workers and alerts change in beat, so those figures are read
from the rows when /metrics is scraped (cheap aggregate queries), which is correct whatever
process did the work:

- ``backline_pipeline_runs_finished_total{status}`` and ``backline_pipeline_run_seconds``
  (sum/count of finished runs' durations), ``backline_release_status_changes_total{to}``
  (release transitions recorded in the release timelines),
- ``backline_alerts{state,severity}`` (pending/firing now), ``backline_alert_deliveries_total
  {status}``, ``backline_scrape_targets{health}``, ``backline_builtin_series``.
"""

import logging

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import REGISTRY, Collector

log = logging.getLogger(__name__)


class DatabaseCollector(Collector):
    def collect(self):
        try:
            yield from self._monitoring()
            yield from self._pipelines()
            yield from self._releases()
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail because the DB is down
            log.warning("database metrics unavailable: %s", exc)

    def describe(self):
        return []  # collected lazily; nothing at registration time

    def _monitoring(self):
        from django.db.models import Count

        from monitoring.models import Alert, Delivery, ScrapeTarget, Series

        alerts = GaugeMetricFamily(
            "backline_alerts", "Alerts pending or firing now", labels=["state", "severity"]
        )
        for row in (
            Alert.objects.filter(state__in=["pending", "firing"])
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

    def _pipelines(self):
        try:
            from pipelines.models import FINISHED_STATUSES, PipelineRun
        except ImportError:
            return
        from django.db.models import Count, DurationField, ExpressionWrapper, F, Sum

        runs = CounterMetricFamily(
            "backline_pipeline_runs_finished",
            "Pipeline runs finished, by final status (from the database)",
            labels=["status"],
        )
        for row in (
            PipelineRun.objects.filter(status__in=FINISHED_STATUSES)
            .values("status")
            .annotate(n=Count("id"))
            .order_by()
        ):
            runs.add_metric([row["status"]], row["n"])
        yield runs
        agg = PipelineRun.objects.filter(
            status__in=FINISHED_STATUSES, started_at__isnull=False, finished_at__isnull=False
        ).aggregate(
            n=Count("id"),
            total=Sum(
                ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
            ),
        )
        total = agg["total"].total_seconds() if agg["total"] else 0.0
        yield SummaryMetricFamily(
            "backline_pipeline_run_seconds",
            "Durations of finished pipeline runs (from the database)",
            count_value=agg["n"] or 0,
            sum_value=total,
        )

    def _releases(self):
        try:
            from pipelines.releases.models import ReleaseEvent
        except ImportError:
            return
        from django.db.models import Count

        changes = CounterMetricFamily(
            "backline_release_status_changes",
            "Release status transitions (from the release timelines in the database)",
            labels=["to"],
        )
        for row in (
            ReleaseEvent.objects.filter(kind="status")
            .values("to_status")
            .annotate(n=Count("id"))
            .order_by()
        ):
            changes.add_metric([row["to_status"]], row["n"])
        yield changes


_registered = False


def register():
    global _registered
    if not _registered:
        REGISTRY.register(DatabaseCollector())
        _registered = True
