from django.conf import settings

from portal.celery import tick_entry

# the dispatchers claim what is due (one query when nothing is): they run often so each target
# is scraped, and each rule evaluated, close to its interval; on the tick queue, so a backlog of
# their batches never holds the next claim back
DISPATCH = float(settings.MONITORING_DISPATCH_SECONDS)

BEAT_SCHEDULE = {
    "monitoring-scrape": tick_entry("monitoring.tasks.scrape_targets", DISPATCH),
    "monitoring-evaluate-alerts": tick_entry("monitoring.tasks.evaluate_alert_rules", DISPATCH),
    "monitoring-purge-samples": {
        "task": "monitoring.tasks.purge_samples",
        "schedule": 3600.0,
    },
}
