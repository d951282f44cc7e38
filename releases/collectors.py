"""Release figures for Backline's /metrics, read from the database at scrape time
(registered with ``portal.registry.collector``; see ``monitoring.collectors``)."""

from prometheus_client.core import CounterMetricFamily

from portal.collectors import counts
from releases.models import ReleaseEvent


def release_families():
    yield counts(
        CounterMetricFamily(
            "backline_release_status_changes",
            "Release status transitions (from the release timelines in the database)",
            labels=["to"],
        ),
        ReleaseEvent.objects.filter(kind="status"),
        "to_status",
    )
