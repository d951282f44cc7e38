"""The home page: the organisation's release status board.

Each app may contribute a live section: a module ``<app>/board.py`` with a function
``board_section(request) -> dict | None`` returning ``{"template": "<app>/board_section.html",
"order": int, ...context}``. Sections are rendered in order on the home page, and each section's
template is responsible for its own HTMX refresh.
"""

import importlib

from django.db.models import Count

from portal.models import AuditEvent
from squads.models import Service, Squad, Tribe

SECTION_MODULES = (
    "pipelines.releases.board",
    "monitoring.board",
    "pipelines.board",
    "infra.board",
)


def board_sections(request):
    sections = []
    for name in SECTION_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        section = module.board_section(request)
        if section:
            sections.append(section)
    return sorted(sections, key=lambda s: s.get("order", 100))


def board_context(request):
    counts = {
        "tribes": Tribe.objects.count(),
        "squads": Squad.objects.count(),
        "services": Service.objects.count(),
    }
    lifecycle = dict(
        Service.objects.values_list("lifecycle")
        .annotate(n=Count("id"))
        .values_list("lifecycle", "n")
    )
    recent = AuditEvent.objects.select_related("squad")[:12]
    my_squads = list(
        Squad.objects.filter(memberships__person__user_id=request.user.pk)
        .order_by("name")
        .distinct()
    )
    return {
        "my_squads": my_squads,
        "counts": counts,
        "lifecycle": lifecycle,
        "recent_events": recent,
        "sections": board_sections(request),
    }


def refresh_gauges():
    """Update gauges that are read from the database/broker at scrape time."""
    from portal import metrics

    try:
        import redis
        from django.conf import settings

        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1
        )
        metrics.QUEUE_DEPTH.labels(queue="celery").set(client.llen("celery"))
    except Exception:  # noqa: BLE001 - a metrics scrape must not fail because Redis is down
        pass
