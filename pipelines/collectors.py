"""Pipeline figures for Backline's /metrics, read from the database at scrape time
(registered with ``portal.registry.collector``; see ``monitoring.collectors``)."""

from django.db.models import Count, DurationField, ExpressionWrapper, F, Sum
from prometheus_client.core import CounterMetricFamily, SummaryMetricFamily

from pipelines.models import FINISHED_STATUSES, PipelineRun
from portal.collectors import counts


def pipeline_families():
    yield counts(
        CounterMetricFamily(
            "backline_pipeline_runs_finished",
            "Pipeline runs finished, by final status (from the database)",
            labels=["status"],
        ),
        PipelineRun.objects.filter(status__in=FINISHED_STATUSES),
        "status",
    )
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
