from django.conf import settings

BEAT_SCHEDULE = {
    "pipelines-reap-lost-runs": {
        "task": "pipelines.tasks.reap_lost_runs",
        "schedule": settings.PIPELINES_REAP_EVERY_SECONDS,
    },
}
