from releases import conf

BEAT_SCHEDULE = {
    "pipelines-tick-releases": {
        "task": "releases.tasks.tick_releases",
        "schedule": conf.tick_seconds(),
        "options": {"expires": conf.tick_seconds() * 2},
    },
}
