"""Counting events in a fixed window in Redis (rate limits, sign-in failures)."""

from django.core.cache import cache


def count_in_window(key: str, seconds: int) -> int:
    """The count of ``key`` after this event, in a window that expires ``seconds`` after its
    first event: SET NX EX and INCR in one round trip to Redis (Django's ``add`` then ``incr``
    take three). Raises whatever the cache raises when Redis is down."""
    backend = getattr(cache, "_cache", None)
    if backend is None or not hasattr(backend, "get_client"):  # not the Redis cache backend
        return 1 if cache.add(key, 1, timeout=seconds) else int(cache.incr(key))
    full = cache.make_and_validate_key(key)
    client = getattr(backend, "_counter_client", None)
    if client is None:  # Django builds a client object per call (~0.2 ms); writes use one pool
        client = backend._counter_client = backend.get_client(full, write=True)
    pipe = client.pipeline(transaction=False)
    pipe.set(full, 0, ex=seconds, nx=True)
    pipe.incr(full)
    _, count = pipe.execute()
    return int(count)
