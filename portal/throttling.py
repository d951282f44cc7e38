"""Per-token rate limits: a fixed one-minute window counted in Redis; 429 with Retry-After."""

import time

from rest_framework.throttling import BaseThrottle

from portal.counters import count_in_window
from portal.models import ApiToken

WINDOW = 70  # seconds a minute's counter lives
# request.META key: (token key hash, count) of a request the lean read path already counted
# (``portal.leanpath``) and left to Django: the throttle reads that count, not a second one
COUNTED = "backline.rate_counted"


def rate_key(key_hash: str, now: float) -> str:
    """The counter of a token's current minute, named after its key's hash (known before the
    token's row is read: the lean read path sends the count alongside its SQL)."""
    return f"rl:{key_hash[:32]}:{int(now // 60)}"


def within_limit(count: int | None, limit: int) -> bool:
    """Whether a request counted ``count`` (None: the counter store is down, never refuse) is
    within ``limit`` a minute (0: no limit)."""
    return limit <= 0 or count is None or count <= limit


def count_request(key_hash: str, now: float) -> int | None:
    """Count one request of the token in the current minute (one Redis round trip); None when
    the counter store is down. The DRF throttle and the lean read path share this count."""
    try:
        return count_in_window(rate_key(key_hash, now), WINDOW)
    except Exception:  # noqa: BLE001 - never refuse service because the counter store is down
        return None


class TokenRateThrottle(BaseThrottle):
    def allow_request(self, request, view):
        token = getattr(request, "auth", None)
        if not isinstance(token, ApiToken):
            return True
        now = time.time()
        self._wait = 60 - (now % 60)
        limit = token.rate_limit_per_minute or 0
        if limit <= 0:
            return True
        counted = request.META.get(COUNTED)
        if counted is not None and counted[0] == token.key_hash:
            return within_limit(counted[1], limit)
        return within_limit(count_request(token.key_hash, now), limit)

    def wait(self):
        return max(1, int(getattr(self, "_wait", 60)) + 1)
