"""The home page: the organisation's release status board.

Apps contribute live sections (``portal.registry.board_section``): a function
``board_section(request) -> dict | None`` returning ``{"template": "<app>/board_section.html",
"order": int, ...context}``. Sections are rendered in order on the home page, and each section's
template is responsible for its own HTMX refresh. The catalog adds its counts and the viewer's
squads through ``portal.registry.home_context``.
"""

import redis
from django.conf import settings

from portal import metrics
from portal.models import AuditEvent
from portal.registry import registry


def board_sections(request):
    sections = []
    for fn in registry.board_sections:
        section = fn(request)
        if section:
            sections.append(section)
    return sorted(sections, key=lambda s: s.get("order", 100))


def board_context(request):
    context = {}
    for fn in registry.home_context:
        context.update(fn(request))
    context["recent_events"] = AuditEvent.objects.select_related("squad")[:12]
    context["sections"] = board_sections(request)
    return context


def refresh_gauges():
    """Update gauges that are read from the database/broker at scrape time."""
    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1
        )
        metrics.QUEUE_DEPTH.labels(queue="celery").set(client.llen("celery"))
    except Exception:  # noqa: BLE001 - a metrics scrape must not fail because Redis is down
        pass
