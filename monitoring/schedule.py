from django.conf import settings

SCRAPE_INTERVAL = float(settings.MONITORING_SCRAPE_INTERVAL or 15)

BEAT_SCHEDULE = {
    "monitoring-scrape": {
        "task": "monitoring.tasks.scrape_targets",
        "schedule": SCRAPE_INTERVAL,
        "options": {"expires": SCRAPE_INTERVAL},
    },
    "monitoring-evaluate-alerts": {
        "task": "monitoring.tasks.evaluate_alert_rules",
        "schedule": 15.0,
        "options": {"expires": 15},
    },
    "monitoring-purge-samples": {
        "task": "monitoring.tasks.purge_samples",
        "schedule": 3600.0,
    },
}
