"""Counting events in a fixed window in Redis (rate limits, sign-in failures)."""

from typing import Any

from django.core.cache import cache


def _redis(key: str):
    """(the Redis client of the cache, the cache's full key), or None for another backend."""
    backend = getattr(cache, "_cache", None)
    if backend is None or not hasattr(backend, "get_client"):  # not the Redis cache backend
        return None
    full = cache.make_and_validate_key(key)
    client = getattr(backend, "_counter_client", None)
    if client is None:  # Django builds a client object per call (~0.2 ms); writes use one pool
        client = backend._counter_client = backend.get_client(full, write=True)
    return client, full


def count_in_window(key: str, seconds: int) -> int:
    """The count of ``key`` after this event, in a window that expires ``seconds`` after its
    first event: SET NX EX and INCR in one round trip to Redis (Django's ``add`` then ``incr``
    take three). Raises whatever the cache raises when Redis is down."""
    redis = _redis(key)
    if redis is None:
        return 1 if cache.add(key, 1, timeout=seconds) else int(cache.incr(key))
    client, full = redis
    pipe = client.pipeline(transaction=False)
    pipe.set(full, 0, ex=seconds, nx=True)
    pipe.incr(full)
    _, count = pipe.execute()
    return int(count)


class PendingCount:
    """``count_in_window`` in two halves: the commands are sent at once, the reply is read by
    ``result`` (call it exactly once), so the caller's other round trip (the lean read path's
    SQL) runs while Redis answers. Raises whatever the cache raises when Redis is down."""

    def __init__(self, key: str, seconds: int):
        self.key = key
        self.conn: Any = None
        self.pool: Any = None
        self.count = 0
        redis = _redis(key)
        if redis is None:
            self.count = count_in_window(key, seconds)
            return
        client, full = redis
        self.pool = client.connection_pool
        self.conn = self.pool.get_connection()
        commands = [("SET", full, 0, "EX", seconds, "NX"), ("INCR", full)]
        try:
            self.conn.send_packed_command(self.conn.pack_commands(commands))
        except BaseException:
            self._release(broken=True)
            raise

    def result(self) -> int:
        if self.conn is None:
            return self.count
        try:
            self.conn.read_response()
            count = self.conn.read_response()
        except BaseException:
            self._release(broken=True)
            raise
        self._release()
        return int(count)

    def undo(self) -> None:
        """Take the event back out of the window (a request counted before it was known to be
        one the caller answers)."""
        redis = _redis(self.key)
        if redis is None:
            cache.decr(self.key)
        else:
            redis[0].decr(redis[1])

    def _release(self, broken: bool = False) -> None:
        conn, self.conn = self.conn, None
        if broken:
            conn.disconnect()
        self.pool.release(conn)
