"""``portal.counters.PendingCount`` against the real Redis of the cache: its count equals
``count_in_window``'s, a count whose reply was never read does not shift the next one, and a
connection Redis dropped is replaced on the next count."""

from django.core.cache import cache

from portal.counters import PendingCount, count_in_window


def test_pending_counts_share_the_window_of_count_in_window():
    cache.clear()
    assert PendingCount("t:shared", 70).result() == 1
    assert count_in_window("t:shared", 70) == 2
    assert PendingCount("t:shared", 70).result() == 3
    assert 0 < cache._cache.get_client().ttl(cache.make_key("t:shared")) <= 70


def test_a_reply_never_read_does_not_become_the_next_counts_reply():
    cache.clear()
    PendingCount("t:left", 70)  # sent, its reply never read
    assert PendingCount("t:other", 70).result() == 1
    assert PendingCount("t:left", 70).result() == 2


def test_a_connection_redis_dropped_is_replaced():
    cache.clear()
    assert PendingCount("t:kill", 70).result() == 1
    client = cache._cache.get_client()
    client.client_kill_filter(_type="normal", skipme=True)  # every other client, ours too
    counted = 0
    for _ in range(2):  # the first may find its socket closed (never refused: not counted)
        try:
            PendingCount("t:kill", 70).result()
            counted += 1
        except Exception:  # noqa: BLE001, S110 - what the lean path treats as "store down"
            pass
    assert PendingCount("t:kill", 70).result() == 2 + counted
