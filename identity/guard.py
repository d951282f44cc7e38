"""Brute-force protection for password sign-in and a rate limit for the OIDC callback.

Counters live in Redis (the project's cache). Per username: consecutive failures (a success
clears them); per address: every failure in the lockout window. Reaching either limit locks that
username (or address) out for ``LOGIN_LOCKOUT_SECONDS``: every attempt is then refused before the
password is even checked, the right one too, with the time left. A lock stores its end, so the
time shown is exact. When Redis cannot be reached the guard lets attempts through (and logs it):
sign-in must not depend on the counter store.
"""

import hashlib
import logging
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from portal.counters import count_in_window

log = logging.getLogger(__name__)
PREFIX = "identity:guard"


def now() -> float:
    return time.time()


@dataclass(frozen=True)
class Lockout:
    scope: str  # "username" | "address"
    until: float

    @property
    def seconds_left(self) -> int:
        return max(1, math.ceil(self.until - now()))

    @property
    def duration(self) -> str:
        return humanize_seconds(self.seconds_left)

    @property
    def message(self) -> str:
        who = "this username" if self.scope == "username" else "your address"
        sso = settings.OIDC_ISSUER and settings.OIDC_CLIENT_ID  # identity.oidc.enabled()
        return (
            f"Too many failed sign-ins for {who}. Password sign-in is locked for "
            f"{self.duration}; try again after that"
            + (f" (or sign in with {settings.OIDC_PROVIDER_NAME})." if sso else ".")
        )


def humanize_seconds(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _key(kind: str, value: str) -> str:
    digest = hashlib.sha256(value.strip().lower().encode()).hexdigest()[:32]
    return f"{PREFIX}:{kind}:{digest}"


def _subjects(username: str, ip: str | None) -> list[tuple[str, str]]:
    subjects = [("username", username)] if username else []
    if ip:
        subjects.append(("address", ip))
    return subjects


def current_lockout(username: str, ip: str | None) -> Lockout | None:
    """The lock in force for this username or address, if any."""
    try:
        for scope, value in _subjects(username, ip):
            until = cache.get(_key(f"lock:{scope}", value))
            if until is not None and float(until) > now():
                return Lockout(scope, float(until))
    except Exception:  # noqa: BLE001 - the counter store is down: let sign-in work
        log.warning("sign-in guard: Redis unavailable, not checking lockouts", exc_info=True)
    return None


def record_failure(username: str, ip: str | None) -> Lockout | None:
    """Count one wrong password; the lockout it starts, if it reached a limit."""
    limits = {"username": settings.LOGIN_MAX_FAILURES, "address": settings.LOGIN_IP_MAX_FAILURES}
    started = None
    try:
        for scope, value in _subjects(username, ip):
            failures = count_in_window(_key(f"fail:{scope}", value), settings.LOGIN_LOCKOUT_SECONDS)
            if limits[scope] > 0 and failures >= limits[scope]:
                until = now() + settings.LOGIN_LOCKOUT_SECONDS
                cache.set(_key(f"lock:{scope}", value), until, settings.LOGIN_LOCKOUT_SECONDS)
                cache.delete(_key(f"fail:{scope}", value))
                started = started or Lockout(scope, until)
    except Exception:  # noqa: BLE001
        log.warning("sign-in guard: Redis unavailable, failure not counted", exc_info=True)
    return started


def record_success(username: str) -> None:
    """A right password ends the run of failures for that username."""
    try:
        cache.delete(_key("fail:username", username))
    except Exception:  # noqa: BLE001
        log.warning("sign-in guard: Redis unavailable", exc_info=True)


def allow_callback(ip: str | None) -> int:
    """0 when this address may complete one more OIDC sign-in this minute, else the seconds
    until it may (a fixed one-minute window per address)."""
    limit = settings.OIDC_CALLBACK_PER_MINUTE
    if limit <= 0 or not ip:
        return 0
    t = now()
    key = _key(f"oidc-callback:{int(t // 60)}", ip)
    try:
        count = count_in_window(key, 70)
    except Exception:  # noqa: BLE001
        log.warning("OIDC callback rate limit: Redis unavailable", exc_info=True)
        return 0
    return 0 if count <= limit else max(1, math.ceil(60 - t % 60))
