"""Status board section: alerts firing now (live, HTMX refresh)."""

from monitoring.models import Alert


def board_section(request):
    firing = list(
        Alert.objects.filter(state__in=[Alert.State.FIRING, Alert.State.PENDING])
        .select_related("rule", "service", "service__owner")
        .order_by("state", "-started_at")[:20]
    )
    return {
        "template": "monitoring/board_section.html",
        "order": 30,
        "alerts": firing,
        "firing": sum(1 for a in firing if a.state == Alert.State.FIRING),
    }
