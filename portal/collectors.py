"""The database-backed part of Backline's /metrics: what the apps registered
(``portal.registry.collector``), read at scrape time so the figures are right whatever process
(web, worker, beat) did the work."""

import logging

from django.db.models import Count
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


def counts(family, queryset, *columns: str, default: str = ""):
    """``family`` with one sample per distinct value of ``columns`` in ``queryset`` (its labels,
    in order; an empty value is written ``default`` when one is given): the number of rows with
    it, read in one GROUP BY query."""
    for row in queryset.values(*columns).annotate(n=Count("id")).order_by():
        labels = [row[c] for c in columns]
        family.add_metric([v or default for v in labels] if default else labels, row["n"])
    return family
