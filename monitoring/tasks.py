"""Celery tasks: scraping (builtin backend), retention, rule evaluation, notifications."""

import logging

import requests
from celery import shared_task
from django.db.models import F
from django.utils import timezone

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
SCRAPE_LOCK = "monitoring:scrape-round"


@shared_task(ignore_result=True, soft_time_limit=50, time_limit=60)
def scrape_targets():
    from django.conf import settings

    from metrics.scrape import scrape_all

    if settings.METRICS_BACKEND != "builtin":
        return None
    from django.core.cache import cache

    # one scrape round at a time: two rounds racing would fight over the reset offsets
    if not cache.add(SCRAPE_LOCK, "1", timeout=55):
        log.info("previous scrape round still running; skipping this one")
        return {"skipped": True}
    try:
        return scrape_all()
    finally:
        cache.delete(SCRAPE_LOCK)


@shared_task(ignore_result=True)
def purge_samples():
    from metrics.scrape import purge_old_samples

    return purge_old_samples()


@shared_task(ignore_result=True, soft_time_limit=50, time_limit=60)
def evaluate_alert_rules():
    from monitoring.services import evaluate_all

    return evaluate_all()


@shared_task(bind=True, ignore_result=True, max_retries=MAX_ATTEMPTS - 1, acks_late=True)
def deliver_notification(self, delivery_id: int):
    """Send one Delivery; retried with exponential backoff (1, 2, 4, 8 s), every attempt logged
    on the row."""
    from monitoring import notify
    from monitoring.models import Delivery

    delivery = Delivery.objects.select_related("channel").filter(pk=delivery_id).first()
    if delivery is None or delivery.status in ("delivered", "failed"):
        return
    Delivery.objects.filter(pk=delivery_id).update(attempts=F("attempts") + 1)
    delivery.refresh_from_db(fields=["attempts"])
    try:
        code = notify.send(delivery)
    except (requests.RequestException, RuntimeError) as exc:
        final = delivery.attempts >= MAX_ATTEMPTS
        Delivery.objects.filter(pk=delivery_id).update(
            status="failed" if final else "retrying",
            last_error=f"attempt {delivery.attempts}: {exc}"[:2000],
        )
        if not final:
            raise self.retry(countdown=2 ** (delivery.attempts - 1), exc=exc) from exc
        log.warning("delivery %s failed for good: %s", delivery_id, exc)
        return
    Delivery.objects.filter(pk=delivery_id).update(
        status="delivered", response_code=code, delivered_at=timezone.now(), last_error=""
    )
