"""Status board section: drifted workspaces, applies in progress, plans awaiting confirmation."""

from infra.models import DriftStatus, RunStatus, TerraformRun, Workspace


def board_section(request):
    drifted = list(
        Workspace.objects.filter(drift_status=DriftStatus.DRIFTED)
        .select_related("owner")
        .order_by("-drift_checked_at")[:10]
    )
    applying = list(
        TerraformRun.objects.filter(status__in=[RunStatus.CONFIRMED, RunStatus.APPLYING])
        .select_related("workspace", "workspace__owner")
        .order_by("created_at")[:10]
    )
    planned_qs = TerraformRun.objects.filter(status=RunStatus.PLANNED)
    awaiting = planned_qs.count()
    planned = list(
        planned_qs.select_related("workspace", "workspace__owner").order_by("planned_at")[:5]
    )
    return {
        "template": "infra/board_section.html",
        "order": 40,
        "drifted": drifted,
        "applying": applying,
        "awaiting": awaiting,
        "planned": planned,
    }
