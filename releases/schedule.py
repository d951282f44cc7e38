from django.conf import settings

from portal.celery import tick_entry


def _every(task: str, seconds: float) -> dict:
    """A beat entry that expires when it could not run within two of its periods."""
    return {"task": task, "schedule": seconds, "options": {"expires": seconds * 2}}


BEAT_SCHEDULE = {
    # the dispatcher on the tick queue: a backlog of its batches never holds the next claim back
    "pipelines-tick-releases": tick_entry(
        "releases.tasks.tick_releases", settings.RELEASES_TICK_SECONDS
    ),
    "releases-scaling-schedules": _every(
        "releases.tasks.apply_scaling_schedules", settings.SCALING_SCHEDULE_SECONDS
    ),
    "releases-observe": _every(
        "releases.tasks.observe_releases", settings.RELEASES_OBSERVE_SECONDS
    ),
    "releases-runtime-snapshots": _every(
        "releases.tasks.refresh_runtime_snapshots", settings.RELEASES_RUNTIME_SECONDS
    ),
}
