"""Per-token rate limits: a fixed one-minute window counted in Redis; 429 with Retry-After."""

import time

from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from portal.models import ApiToken


def _count(key: str) -> int:
    """This window's count after this request: SET NX EX (the window's expiry) and INCR in one
    round trip to Redis (Django's ``add`` then ``incr`` took three)."""
    backend = getattr(cache, "_cache", None)
    if backend is None or not hasattr(backend, "get_client"):  # not the Redis cache backend
        return 1 if cache.add(key, 1, timeout=70) else cache.incr(key)
    full = cache.make_and_validate_key(key)
    pipe = backend.get_client(full, write=True).pipeline(transaction=False)
    pipe.set(full, 0, ex=70, nx=True)
    pipe.incr(full)
    _, count = pipe.execute()
    return int(count)


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
            count = _count(f"rl:{token.pk}:{window}")
        except Exception:  # noqa: BLE001 - never refuse service because the counter store is down
            return True
        self._wait = 60 - (now % 60)
        return count <= limit

    def wait(self):
        return max(1, int(getattr(self, "_wait", 60)) + 1)
