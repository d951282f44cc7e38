"""Per-token rate limits: a fixed one-minute window counted in Redis; 429 with Retry-After."""

import time

from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

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
        key = f"rl:{token.pk}:{window}"
        try:
            added = cache.add(key, 1, timeout=70)
            count = 1 if added else cache.incr(key)
        except Exception:  # noqa: BLE001 - never refuse service because the counter store is down
            return True
        self._wait = 60 - (now % 60)
        return count <= limit

    def wait(self):
        return max(1, int(getattr(self, "_wait", 60)) + 1)
