from pipelines import conf

BEAT_SCHEDULE = {
    "pipelines-reap-lost-runs": {
        "task": "pipelines.tasks.reap_lost_runs",
        "schedule": conf.reap_every_seconds(),
    },
}
