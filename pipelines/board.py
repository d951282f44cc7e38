"""Status board section: services whose latest pipeline run failed (live, HTMX refresh)."""

from pipelines.catalog import latest_ids
from pipelines.models import ACTIVE_STATUSES, PipelineRun, RunStatus

FAILING = (RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.LOST)


def failing_runs(limit=20):
    return list(
        PipelineRun.objects.filter(pk__in=latest_ids(), status__in=FAILING)
        .select_related("service", "service__owner")
        .order_by("-created_at")[:limit]
    )


def running_count():
    return PipelineRun.objects.filter(status__in=ACTIVE_STATUSES).count()


def board_section(request):
    return {
        "template": "pipelines/board_section.html",
        "order": 20,
        "failing": failing_runs(),
        "active": running_count(),
    }
