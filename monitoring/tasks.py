"""Celery tasks: scraping (builtin backend), retention, rule evaluation. Notifications are sent
by the outbound delivery service (``portal.tasks.deliver_event``)."""

import logging

from celery import shared_task

log = logging.getLogger(__name__)

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
