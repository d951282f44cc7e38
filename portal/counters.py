"""Counting events in a fixed window in Redis (rate limits, sign-in failures)."""

import os
import threading
from typing import Any

from django.core.cache import cache


def _redis(key: str):
    """(the Redis client of the cache, the cache's full key), or None for another backend."""
    client = _client()
    return None if client is None else (client, cache.make_and_validate_key(key))


def _client():
    """The cache's Redis client (one for every count: Django builds a client object per call,
    ~0.2 ms; writes use one pool), or None for another backend."""
    backend = getattr(cache, "_cache", None)
    if backend is None or not hasattr(backend, "get_client"):  # not the Redis cache backend
        return None
    client = getattr(backend, "_counter_client", None)
    if client is None:
        client = backend._counter_client = backend.get_client(write=True)
    return client


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
    SQL) runs while Redis answers. The commands go, packed here, over a connection this thread
    keeps (``_own_connection``: no pool checkout, no readiness poll per count); a connection
    that failed is closed (the next count reconnects). Raises whatever the cache raises when
    Redis is down."""

    def __init__(self, key: str, seconds: int):
        self.key = key
        self.conn: Any = None
        self.count = 0
        client = _client()
        if client is None:
            self.count = count_in_window(key, seconds)
            return
        full = cache.make_key(key).encode()  # the rate keys: short, no control characters
        self.conn = _own_connection(client.connection_pool)
        try:
            self.conn.send_packed_command([_set_incr(full, seconds)])
        except BaseException:
            self._fail()
            raise

    def result(self) -> int:
        if self.conn is None:
            return self.count
        try:
            self.conn.read_response()
            count = self.conn.read_response()
        except BaseException:
            self._fail()
            raise
        self.conn = _local.unread = None
        return int(count)

    def undo(self) -> None:
        """Take the event back out of the window (a request counted before it was known to be
        one the caller answers)."""
        redis = _redis(self.key)
        if redis is None:
            cache.decr(self.key)
        else:
            redis[0].decr(redis[1])

    def _fail(self) -> None:
        conn, self.conn = self.conn, None
        _local.unread = None
        conn.disconnect()


def _set_incr(full: bytes, seconds: int) -> bytes:
    """``SET full 0 EX seconds NX`` and ``INCR full``, packed (RESP)."""
    ex = b"%d" % seconds
    key = b"$%d\r\n%b\r\n" % (len(full), full)
    return (
        b"*6\r\n$3\r\nSET\r\n%b$1\r\n0\r\n$2\r\nEX\r\n$%d\r\n%b\r\n$2\r\nNX\r\n"
        b"*2\r\n$4\r\nINCR\r\n%b" % (key, len(ex), ex, key)
    )


_local = threading.local()


def _own_connection(pool):
    """This thread's connection of ``pool``, taken from it once (per process) and kept: never
    returned, never shared; closed first if a reply sent for is still unread on it (a count
    whose ``result`` was never asked: the next count reconnects)."""
    kept = getattr(_local, "conn", None)
    if kept is None or kept[0] is not pool or kept[1] != os.getpid():
        kept = _local.conn = (pool, os.getpid(), pool.get_connection())
    elif getattr(_local, "unread", False):
        kept[2].disconnect()
    _local.unread = True
    return kept[2]
