"""Celery tasks: scraping (builtin backend), retention, rule evaluation. Notifications are sent
by the outbound delivery service (``portal.tasks.deliver_event``).

Scraping and rule evaluation are claimed in batches by a beat dispatcher (every
``MONITORING_DISPATCH_SECONDS``) and fanned out, one task per shard / batch, so every worker
process shares them and a tick costs what is due."""

import logging

from celery import shared_task
from django.conf import settings

from metrics import scrape
from monitoring import evaluation

log = logging.getLogger(__name__)

SHARD_TASK = "monitoring.tasks.scrape_shard"
MAX_SHARDS_PER_TICK = 400


@shared_task(ignore_result=True, soft_time_limit=50, time_limit=60)
def scrape_targets():
    """Beat: claim the due targets in shards, one ``scrape_shard`` task each."""
    if settings.METRICS_BACKEND != "builtin":
        return None
    from django.utils import timezone

    from portal import claims
    from portal.celery import enqueue

    now = timezone.now()  # what falls due while it claims waits for the next tick
    return claims.fan_out(
        lambda: scrape.claim_due(scrape.SHARD_SIZE, now),
        lambda ids: enqueue(SHARD_TASK, ids),
        scrape.SHARD_SIZE,
        MAX_SHARDS_PER_TICK * scrape.SHARD_SIZE,
    )


@shared_task(name=SHARD_TASK, ignore_result=True, soft_time_limit=50, time_limit=60)
def scrape_shard(ids):
    return scrape.scrape_shard(ids)


@shared_task(ignore_result=True)
def purge_samples():
    scrape.sync_all_targets()  # writes that bypassed Service.save()
    return scrape.purge_old_samples()


@shared_task(ignore_result=True, soft_time_limit=50, time_limit=60)
def evaluate_alert_rules():
    """Beat: claim the due rules in batches, one ``evaluate_alert_batch`` task each."""
    return evaluation.dispatch()


@shared_task(name=evaluation.BATCH_TASK, ignore_result=True, soft_time_limit=50, time_limit=60)
def evaluate_alert_batch(ids):
    return evaluation.evaluate_batch(ids)
