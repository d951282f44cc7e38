"""Per-token rate limits: a fixed one-minute window counted in Redis; 429 with Retry-After."""

import time

from rest_framework.throttling import BaseThrottle

from portal.counters import count_in_window
from portal.models import ApiToken


def within_limit(token_pk: int, limit: int, now: float) -> bool:
    """Count one request of the token in the current minute (one Redis round trip) and say
    whether it is within ``limit`` a minute (0: no limit). The DRF throttle and the lean read
    path (``portal.leanpath``) share this count. A counter store that is down never refuses."""
    if limit <= 0:
        return True
    try:
        count = count_in_window(f"rl:{token_pk}:{int(now // 60)}", 70)
    except Exception:  # noqa: BLE001 - never refuse service because the counter store is down
        return True
    return count <= limit


class TokenRateThrottle(BaseThrottle):
    def allow_request(self, request, view):
        token = getattr(request, "auth", None)
        if not isinstance(token, ApiToken):
            return True
        now = time.time()
        self._wait = 60 - (now % 60)
        return within_limit(token.pk, token.rate_limit_per_minute or 0, now)

    def wait(self):
        return max(1, int(getattr(self, "_wait", 60)) + 1)
