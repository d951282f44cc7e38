from django.conf import settings

BEAT_SCHEDULE = {
    "pipelines-reap-lost-runs": {
        "task": "pipelines.tasks.reap_lost_runs",
        "schedule": settings.PIPELINES_REAP_EVERY_SECONDS,
    },
    "pipelines-tick-releases": {
        "task": "pipelines.releases.tasks.tick_releases",
        "schedule": settings.RELEASES_TICK_SECONDS,
        "options": {"expires": settings.RELEASES_TICK_SECONDS * 2},
    },
}
