"""Status board section: releases in flight (weight and step) and recent deploys."""

from releases import strategy
from releases.models import ACTIVE_RELEASE, FINAL_RELEASE, Release


def board_section(request):
    qs = Release.objects.select_related("service", "service__owner", "environment")
    in_flight = list(qs.filter(status__in=ACTIVE_RELEASE).order_by("-created_at")[:20])
    for r in in_flight:
        r.step_text = strategy.describe(r.current_step) if r.current_step else "finishing"
    recent = list(qs.filter(status__in=FINAL_RELEASE).order_by("-finished_at", "-id")[:10])
    return {
        "template": "pipelines/releases/board_section.html",
        "order": 10,
        "in_flight": in_flight,
        "recent": recent,
    }
