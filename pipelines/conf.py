"""Pipeline settings: Django settings first, then environment variables, then defaults."""

from django.conf import settings

from portal.env import env_float, env_int


def _get(name, default, reader):
    value = getattr(settings, name, None)
    return value if value is not None else reader(name, default)


def heartbeat_seconds() -> float:
    """How often a worker running a step refreshes the run's heartbeat."""
    return _get("PIPELINES_HEARTBEAT_SECONDS", 5.0, env_float)


def lost_after_seconds() -> float:
    """A running run whose heartbeat is older than this is marked lost by the reaper."""
    return _get("PIPELINES_LOST_AFTER_SECONDS", float(settings.HEARTBEAT_STALE_SECONDS), env_float)


def reap_every_seconds() -> float:
    return _get("PIPELINES_REAP_EVERY_SECONDS", 15.0, env_float)


def requeue_after_seconds() -> float:
    """A run still queued this long after it was sent to the broker is sent again."""
    return _get("PIPELINES_REQUEUE_AFTER_SECONDS", 600.0, env_float)


def max_step_log_bytes() -> int:
    return _get("PIPELINES_MAX_STEP_LOG_BYTES", 10 * 2**20, env_int)


def kill_grace_seconds() -> float:
    return _get("PIPELINES_KILL_GRACE_SECONDS", 5.0, env_float)


WEBHOOK_MAX_BYTES = 25 * 1024 * 1024
