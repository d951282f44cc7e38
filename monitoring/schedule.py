from django.conf import settings

# the dispatchers claim what is due (one query when nothing is): they run often so each target
# is scraped, and each rule evaluated, close to its interval
DISPATCH = float(settings.MONITORING_DISPATCH_SECONDS)

BEAT_SCHEDULE = {
    "monitoring-scrape": {
        "task": "monitoring.tasks.scrape_targets",
        "schedule": DISPATCH,
        "options": {"expires": DISPATCH * 2},
    },
    "monitoring-evaluate-alerts": {
        "task": "monitoring.tasks.evaluate_alert_rules",
        "schedule": DISPATCH,
        "options": {"expires": DISPATCH * 2},
    },
    "monitoring-purge-samples": {
        "task": "monitoring.tasks.purge_samples",
        "schedule": 3600.0,
    },
}
