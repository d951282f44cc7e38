"""The home page: the organisation's release status board. Each section is gathered here; the
monitoring, pipelines and infra apps extend ``board_context`` with their live sections."""

from django.db.models import Count

from portal.models import AuditEvent
from squads.models import Service, Squad, Tribe


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
    return {"counts": counts, "lifecycle": lifecycle, "recent_events": recent}


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
