"""Release settings: Django settings first, then environment variables, then defaults.

Tests shorten every interval (``RELEASES_*`` environment variables) so a release runs in seconds.
"""

from django.conf import settings

from portal.env import env_float, env_int


def _get(name, default, reader):
    value = getattr(settings, name, None)
    return value if value is not None else reader(name, default)


def tick_seconds() -> float:
    """How often beat drives the active releases."""
    return _get("RELEASES_TICK_SECONDS", 5.0, env_float)


def analysis_interval() -> float:
    """Default seconds between two measurements of a metric."""
    return _get("RELEASES_ANALYSIS_INTERVAL", 30.0, env_float)


def analysis_count() -> int:
    return _get("RELEASES_ANALYSIS_COUNT", 3, env_int)


def analysis_window() -> float:
    """Default seconds of data each measurement looks at (at least two scrapes)."""
    return _get("RELEASES_ANALYSIS_WINDOW", 60.0, env_float)


def min_requests() -> int:
    """Fewer canary requests than this in the window is *inconclusive* (too little traffic)."""
    return _get("RELEASES_MIN_REQUESTS", 10, env_int)


def driver_retry_seconds() -> float:
    """After a deploy driver error, the controller tries again after this long."""
    return _get("RELEASES_DRIVER_RETRY_SECONDS", 5.0, env_float)


def promote_debounce_seconds() -> float:
    """A promote without ``step`` is refused for this long after the release reached a pause."""
    return _get("RELEASES_PROMOTE_DEBOUNCE_SECONDS", 3.0, env_float)


def driver_confirm_seconds() -> float:
    """A wanted driver call not confirmed after this long is handed to the driver again by beat
    (the same call: the deployer sees it once)."""
    return _get("RELEASES_DRIVER_CONFIRM_SECONDS", 30.0, env_float)
