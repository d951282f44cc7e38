from django.conf import settings

BEAT_SCHEDULE = {
    "pipelines-tick-releases": {
        "task": "releases.tasks.tick_releases",
        "schedule": settings.RELEASES_TICK_SECONDS,
        "options": {"expires": settings.RELEASES_TICK_SECONDS * 2},
    },
    "releases-scaling-schedules": {
        "task": "releases.tasks.apply_scaling_schedules",
        "schedule": settings.SCALING_SCHEDULE_SECONDS,
        "options": {"expires": settings.SCALING_SCHEDULE_SECONDS * 2},
    },
    "releases-observe": {
        "task": "releases.tasks.observe_releases",
        "schedule": settings.RELEASES_OBSERVE_SECONDS,
        "options": {"expires": settings.RELEASES_OBSERVE_SECONDS * 2},
    },
}
