from pipelines import conf
from pipelines.releases import conf as release_conf

BEAT_SCHEDULE = {
    "pipelines-reap-lost-runs": {
        "task": "pipelines.tasks.reap_lost_runs",
        "schedule": conf.reap_every_seconds(),
    },
    "pipelines-tick-releases": {
        "task": "pipelines.releases.tasks.tick_releases",
        "schedule": release_conf.tick_seconds(),
        "options": {"expires": release_conf.tick_seconds() * 2},
    },
}
