"""Generation-keyed caches: rendered results stay valid until something they were built from
changes.

A ``Generation`` is a counter in Redis. Cached values are stored under keys that include its
current value, so bumping it makes every older entry unreachable at once (they expire by
their own timeout). A generation is bumped twice per change: immediately (a later read in the
same transaction sees its own write) and again after the transaction commits (a reader that
read the new counter before the commit became visible and cached the old rows under it is
superseded). Entries also carry a timeout, the bound on staleness for writes made outside the
ORM (raw SQL, psql).

Models whose rows feed a cache are *watched*: ``watch(model, generation, fields=...)`` bumps
the generation on ``save()``, ``delete()``, many-to-many changes, and, when the model's manager
is ``WatchedQuerySet.as_manager()``, on ``QuerySet.update()``, ``bulk_create()`` and
``bulk_update()`` as well. Given ``fields``, writes that touch none of them (heartbeats,
counters) do not bump.
Code writing rows with COPY or raw SQL bumps the generation itself.

If Redis cannot be reached, reads fall through to the builder and bumps are skipped: the page
is rendered uncached rather than failing.
"""

import hashlib
import logging
import threading
import time
from collections import OrderedDict

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import Signal

log = logging.getLogger(__name__)

# sent by WatchedQuerySet after update() / bulk_create() / bulk_update(): fields = names
# changed, pks = the rows written (for update(): the rows matching before it ran, read only when
# someone listens); rows_changing is sent before update() with the same arguments
rows_changed = Signal()
rows_changing = Signal()

MISS = object()


class Generation:
    def __init__(self, name, setting, covers=()):
        self.name = name
        self.key = f"gen:{name}"
        self.setting = setting  # settings attribute holding the entry timeout in seconds
        # narrower generations (built from a subset of this one's inputs, watched on fewer
        # fields) that an explicit bump() after a raw-SQL or COPY write must bump as well
        self.covers = tuple(covers)
        self._local = LocalEntries()

    @property
    def timeout(self):
        return getattr(settings, self.setting, 0)

    def current(self):
        """The counter's value; a missing counter (first use, flushed Redis) restarts from the
        clock, so it never returns to a value older entries were stored under."""
        value = cache.get(self.key)
        if value is None:
            cache.add(self.key, time.time_ns() // 1000, timeout=None)
            value = cache.get(self.key)
        return value

    def _incr(self):
        try:
            cache.incr(self.key)
        except ValueError:  # no counter yet: the next read starts one from the clock
            pass
        except Exception:  # noqa: BLE001 - Redis down: entries expire by their timeout
            log.warning("cache generation %s not bumped (cache unreachable)", self.name)

    def bump(self):
        """After a write no watcher saw (COPY, raw SQL): this generation and those it covers."""
        for generation in (self, *self.covers):
            generation.bump_own()

    def bump_own(self):
        self._incr()
        transaction.on_commit(self._incr)

    def cached(self, parts, build):
        """``build()``, cached under this generation and ``parts`` (strings identifying the
        variant: path, query string, host...).

        Entries live in Redis (shared by every process) and, for the most recent ones, in this
        process's memory too: a hit then costs one Redis read (the counter) and no unpickling.
        Both are keyed by the counter's current value, so they go stale together."""
        timeout = self.timeout
        if not timeout:
            return build()
        try:
            digest = hashlib.sha1("\0".join(parts).encode()).hexdigest()
            key = f"{self.name}:{self.current()}:{digest}"
        except Exception:  # noqa: BLE001 - Redis down: render uncached
            log.warning("cache %s unreachable: rendering uncached", self.name)
            return build()
        value = self._local.get(key)
        if value is not MISS:
            return value
        try:
            value = cache.get(key, MISS)
        except Exception:  # noqa: BLE001
            value = MISS
        if value is MISS:
            value = build()
            if _in_transaction():
                # what this transaction sees may include its own uncommitted writes (and may
                # be rolled back): never share it
                return value
            try:
                cache.set(key, value, timeout)
            except Exception:  # noqa: BLE001
                log.warning("cache %s unreachable: result not stored", self.name)
        self._local.put(key, value, timeout)
        return value


def _in_transaction():
    """Inside an atomic block of the application (a test case's own wrapping block aside)."""
    conn = connections[DEFAULT_DB_ALIAS]
    return any(not getattr(a, "_from_testcase", False) for a in conn.atomic_blocks)


class LocalEntries:
    """A small thread-safe LRU of (key -> value, expiry) kept in process memory."""

    def __init__(self, size=256):
        self.size = size
        self.entries = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            item = self.entries.get(key)
            if item is None:
                return MISS
            value, expires = item
            if expires < time.monotonic():
                del self.entries[key]
                return MISS
            self.entries.move_to_end(key)
            return value

    def put(self, key, value, timeout):
        with self.lock:
            self.entries[key] = (value, time.monotonic() + timeout)
            self.entries.move_to_end(key)
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)


class WatchedQuerySet(models.QuerySet):
    """A QuerySet whose bulk writes (which send no model signals) announce themselves."""

    def update(self, **kwargs):
        pks = None
        if rows_changing.has_listeners(self.model):
            pks = list(self.order_by().values_list("pk", flat=True))
            rows_changing.send(sender=self.model, fields=set(kwargs), pks=pks)
        n = super().update(**kwargs)
        if n or pks is not None:  # a receiver of rows_changing hears how it ended
            rows_changed.send(sender=self.model, fields=set(kwargs), pks=pks)
        return n

    def bulk_create(self, objs, *args, **kwargs):
        objs = super().bulk_create(objs, *args, **kwargs)
        if objs:
            pks = [o.pk for o in objs if o.pk is not None]
            rows_changed.send(sender=self.model, fields=None, pks=pks)
        return objs

    def bulk_update(self, objs, fields, *args, **kwargs):
        n = super().bulk_update(objs, fields, *args, **kwargs)
        if n:
            rows_changed.send(sender=self.model, fields=set(fields), pks=[o.pk for o in objs])
        return n


def unwatch(model, generation):
    """Undo ``watch(model, generation)`` (to watch it again with other fields)."""
    uid = f"{generation.name}:{model._meta.label}"
    post_save.disconnect(sender=model, dispatch_uid=uid)
    post_delete.disconnect(sender=model, dispatch_uid=uid)
    rows_changed.disconnect(sender=model, dispatch_uid=uid)
    for field in model._meta.local_many_to_many:
        m2m_changed.disconnect(sender=field.remote_field.through, dispatch_uid=uid + field.name)


def watch(model, generation, fields=None):
    """Bump ``generation`` whenever rows of ``model`` change; with ``fields`` (names), only
    when a write may touch one of them (a save() without update_fields always may)."""
    fields = None if fields is None else frozenset(fields) | {f + "_id" for f in fields}
    uid = f"{generation.name}:{model._meta.label}"

    def relevant(changed):
        return fields is None or changed is None or bool(fields & set(changed))

    def on_save(sender, instance, update_fields=None, **kw):
        if relevant(update_fields):
            generation.bump_own()

    def on_delete(sender, **kw):
        generation.bump_own()

    def on_rows(sender, fields=None, **kw):
        if relevant(fields):
            generation.bump_own()

    def on_m2m(sender, action, **kw):
        if action in ("post_add", "post_remove", "post_clear"):
            generation.bump_own()

    post_save.connect(on_save, sender=model, weak=False, dispatch_uid=uid)
    post_delete.connect(on_delete, sender=model, weak=False, dispatch_uid=uid)
    rows_changed.connect(on_rows, sender=model, weak=False, dispatch_uid=uid)
    for field in model._meta.local_many_to_many:
        if fields is None or field.name in fields:
            through = field.remote_field.through
            m2m_changed.connect(on_m2m, sender=through, weak=False, dispatch_uid=uid + field.name)
