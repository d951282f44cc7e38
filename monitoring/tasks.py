"""Celery tasks: scraping (builtin backend), retention, rule evaluation. Notifications are sent
by the outbound delivery service (``portal.tasks.deliver_event``)."""

import logging

from celery import shared_task
from django.conf import settings
from django.core.cache import cache

from metrics.scrape import purge_old_samples, scrape_all
from monitoring.services import evaluate_all

log = logging.getLogger(__name__)

SCRAPE_LOCK = "monitoring:scrape-round"


@shared_task(ignore_result=True, soft_time_limit=50, time_limit=60)
def scrape_targets():
    if settings.METRICS_BACKEND != "builtin":
        return None

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
    return purge_old_samples()


@shared_task(ignore_result=True, soft_time_limit=50, time_limit=60)
def evaluate_alert_rules():
    return evaluate_all()
