"""Per-token rate limits: a fixed one-minute window counted in Redis; 429 with Retry-After."""

import time

from rest_framework.throttling import BaseThrottle

from portal.counters import count_in_window
from portal.models import ApiToken


class TokenRateThrottle(BaseThrottle):
    def allow_request(self, request, view):
        token = getattr(request, "auth", None)
        if not isinstance(token, ApiToken):
            return True
        limit = token.rate_limit_per_minute or 0
        if limit <= 0:
            return True
        now = time.time()
        window = int(now // 60)
        try:
            count = count_in_window(f"rl:{token.pk}:{window}", 70)
        except Exception:  # noqa: BLE001 - never refuse service because the counter store is down
            return True
        self._wait = 60 - (now % 60)
        return count <= limit

    def wait(self):
        return max(1, int(getattr(self, "_wait", 60)) + 1)
