"""The database-backed part of Backline's /metrics: what the apps registered
(``portal.registry.collector``), read at scrape time so the figures are right whatever process
(web, worker, beat) did the work."""

import logging

from prometheus_client.registry import REGISTRY, Collector

from portal.registry import registry

log = logging.getLogger(__name__)


class DatabaseCollector(Collector):
    def collect(self):
        for families in registry.collectors:
            try:
                yield from families()
            except Exception as exc:  # noqa: BLE001 - a scrape must not fail: the DB is down
                log.warning("database metrics unavailable (%s): %s", families.__qualname__, exc)

    def describe(self):
        return []  # collected lazily; nothing at registration time


_registered = False


def register():
    global _registered
    if not _registered:
        REGISTRY.register(DatabaseCollector())
        _registered = True
