"""Release figures for Backline's /metrics, read from the database at scrape time
(registered with ``portal.registry.collector``; see ``monitoring.collectors``)."""

from django.db.models import Count
from prometheus_client.core import CounterMetricFamily

from releases.models import ReleaseEvent


def release_families():
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
