"""Builtin backend, ingestion: scrape Prometheus-format `/metrics` endpoints into the database.

Each target is scraped every ``MONITORING_SCRAPE_INTERVAL`` seconds: beat claims the due ones
(``next_scrape_at``) in shards and a worker scrapes a shard concurrently (``scrape_shard``).

``Service.metrics_urls`` lists a service's endpoints, each either a URL string or an object
``{"url": ..., "track": "canary"}``. The track of a series is the entry's ``track`` if set,
else the series' own ``track`` label, else ``stable``. Every series gets the labels
``service`` (the catalog slug unless the exposition sets one) and ``track``.
"""

import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from metrics.models import Sample, ScrapeTarget, Series
from portal import claims, urlguard
from squads.models import Service

log = logging.getLogger(__name__)

SCRAPE_TIMEOUT = 5.0  # the whole scrape of one target (redirects included)
MAX_SCRAPE_BYTES = 16 * 2**20
CUMULATIVE_TYPES = {"counter", "histogram", "summary"}
MAX_SAMPLES_PER_TARGET = 5000
SHARD_SIZE = 50  # targets per claimed shard (one worker task)
SCRAPE_THREADS = 16  # concurrent fetches in a shard
INGEST_EVERY = 0.5  # s: a shard ingests the expositions that arrived in this time together


def scrape_interval() -> float:
    return float(settings.MONITORING_SCRAPE_INTERVAL or 15)


def retention_seconds() -> int:
    return int(settings.MONITORING_RETENTION_HOURS or 192) * 3600


def normalise_entries(metrics_urls) -> list[dict]:
    """``metrics_urls`` as a list of {"url", "track"}; bad entries are skipped."""
    out = []
    for entry in metrics_urls or []:
        if isinstance(entry, str) and entry.strip():
            out.append({"url": entry.strip(), "track": ""})
        elif isinstance(entry, dict) and isinstance(entry.get("url"), str):
            out.append({"url": entry["url"].strip(), "track": str(entry.get("track") or "")})
    return out


def sync_targets(service: Service) -> list[ScrapeTarget]:
    """Make the service's ScrapeTarget rows mirror its ``metrics_urls``."""
    entries = {e["url"]: e for e in normalise_entries(service.metrics_urls)}
    existing = {t.url: t for t in ScrapeTarget.objects.filter(service=service)}
    for url, gone in existing.items():
        if url not in entries:
            gone.delete()
    targets = []
    for url, entry in entries.items():
        target = existing.get(url)
        if target is None:
            target, _ = ScrapeTarget.objects.get_or_create(
                service=service, url=url, defaults={"track": entry["track"]}
            )
        elif target.track != entry["track"]:
            target.track = entry["track"]
            target.save(update_fields=["track"])
        targets.append(target)
    return targets


def label_key(labels: dict) -> str:
    return ",".join(f'{k}="{labels[k]}"' for k in sorted(labels))


SUFFIXES = ("_total", "_bucket", "_count", "_sum")


def _base(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _created_key(name: str, labels: dict) -> tuple:
    return _base(name), label_key({k: v for k, v in labels.items() if k != "le"})


def parse_exposition(text: str):
    """Yield (sample_name, kind, labels, value, created) from Prometheus text format.

    ``created`` is the child's ``_created`` timestamp when the exposition has one."""
    created, samples = {}, []
    for family in text_string_to_metric_families(text):
        cumulative = family.type in CUMULATIVE_TYPES
        for s in family.samples:
            if s.name.endswith("_created"):
                created[(s.name[: -len("_created")], label_key(s.labels))] = float(s.value)
                continue
            if family.type == "summary" and "quantile" in s.labels:
                kind = "gauge"
            else:
                kind = "counter" if cumulative else "gauge"
            samples.append((s.name, kind, dict(s.labels), float(s.value)))
    for name, kind, labels, value in samples:
        c = created.get(_created_key(name, labels)) if kind == "counter" else None
        yield name, kind, labels, value, c


def stored_value(series: Series, raw: float, t: float, created=None) -> tuple[float, bool]:
    """The value to store for a sample of ``series`` exposed as ``raw`` at ``t``, and whether
    it was a counter reset; moves the series' reset state on (the caller saves it).

    Counter-like series are stored reset-adjusted (see ``metrics.models``): a drop, or a
    changed ``_created`` timestamp, adds the previous raw value to the offset, and the new
    offset is logged in ``Series.resets`` with the time it starts at. A drop from or to an
    infinite value is stored as it is (rate() still sees it as a reset)."""
    stored, was_reset = raw, False
    if series.kind == "counter":
        restarted = created is not None and series.created not in (None, created)
        last = series.last_raw
        if last is not None and math.isfinite(last + raw) and (raw < last or restarted):
            series.offset += last  # counter reset: keep the stored value monotonic
            series.resets = [*series.resets, [t, series.offset]]
            was_reset = True
        stored = raw + series.offset
        series.created = created
    series.last_raw = raw
    series.last_t = t
    return stored, was_reset


def _labelled(target: ScrapeTarget, labels: dict) -> dict:
    """``labels`` with the ``service`` and ``track`` every stored series carries."""
    labels.setdefault("service", target.service.slug)
    if target.track:
        labels["track"] = target.track
    labels.setdefault("track", "stable")
    return labels


def _new_series(target: ScrapeTarget, name: str, kind: str, labels: dict, key: str) -> Series:
    le = labels.get("le")
    return Series(
        target=target,
        service=target.service,
        name=name,
        kind=kind,
        labels=labels,
        key=key,
        track=labels["track"][:20],
        code=str(labels.get("code") or labels.get("status") or "")[:10],
        le=float(le) if le is not None else None,
    )


def _match_series(target: ScrapeTarget, text: str, known: dict) -> tuple[list, list[Series]]:
    """The exposition's samples as (series, raw value, created), and the series first seen
    in it (not saved yet); ``known``: the target's series by (name, key), grown by the new
    ones. At most ``MAX_SAMPLES_PER_TARGET``; NaN samples are dropped."""
    new_series, pending = [], []
    for n, (name, kind, labels, value, created) in enumerate(parse_exposition(text)):
        if n >= MAX_SAMPLES_PER_TARGET:
            break
        if math.isnan(value):
            continue
        labels = _labelled(target, labels)
        key = label_key(labels)
        series = known.get((name, key))
        if series is None:
            series = _new_series(target, name, kind, labels, key)
            known[(name, key)] = series
            new_series.append(series)
        pending.append((series, value, created))
    return pending, new_series


def _create_series(new_series: list[Series]) -> None:
    """Insert ``new_series`` and give each its id (a concurrent insert's, on a conflict)."""
    if not new_series:
        return
    Series.objects.bulk_create(new_series, ignore_conflicts=True)
    # re-read ids (ignore_conflicts does not set them)
    ids = {
        (s.target_id, s.name, s.key): s.pk
        for s in Series.objects.filter(
            target_id__in={x.target_id for x in new_series}, key__in={x.key for x in new_series}
        ).only("pk", "target_id", "name", "key")
    }
    for s in new_series:
        s.pk = ids.get((s.target_id, s.name, s.key))


def _store(rows: list[Sample], changed: list[Series], reset: list[Series]) -> None:
    with transaction.atomic():
        Sample.objects.bulk_create(rows, batch_size=2000, ignore_conflicts=True)
        claims.update_rows(changed, ["last_raw", "offset", "last_t", "created"])
        if reset:  # rare (a process restarted): not part of every scrape's update
            claims.update_rows(reset, ["resets"])


def ingest(target: ScrapeTarget, text: str, t: float) -> int:
    """Store one scrape of ``target`` taken at Unix time ``t``. Returns the samples stored;
    ValueError when ``text`` is not Prometheus text format."""
    n = ingest_many([(target, text)], t)[target.pk]
    if isinstance(n, ValueError):
        raise n
    return n


def ingest_many(scrapes, t: float) -> dict:
    """Store the scrapes ``[(target, exposition text)]`` taken at ``t`` together: one read of
    their series, one insert of the samples, one update of the series. {target id: samples
    stored, or the ValueError of an exposition that is not Prometheus text format}."""
    known: dict = {}
    for series in Series.objects.filter(target__in=[tg for tg, _ in scrapes]):
        known.setdefault(series.target_id, {})[(series.name, series.key)] = series
    out: dict = {}
    pending, new_series = [], []
    for target, text in scrapes:
        try:
            got, new = _match_series(target, text, known.setdefault(target.pk, {}))
        except ValueError as exc:
            out[target.pk] = exc
            continue
        pending.append((target, got))
        new_series += new
    _create_series(new_series)
    changed, rows, reset = [], [], []
    for target, got in pending:
        out[target.pk] = 0
        for series, raw, created in got:
            if series.pk is None:
                continue
            if series.last_t is not None and t <= series.last_t:
                continue  # out of order / duplicate scrape
            stored, was_reset = stored_value(series, raw, t, created)
            if was_reset:
                reset.append(series)
            changed.append(series)
            rows.append(Sample(series_id=series.pk, t=t, value=stored))
            out[target.pk] += 1
    _store(rows, changed, reset)
    return out


def fetch(url: str):
    """GET one exposition through the outbound URL guard (connecting to the address it
    checked): (text, None) or (None, error message). No database access, so several can run
    in threads."""
    try:
        resp = urlguard.request(
            "GET",
            url,
            use="scrape",
            timeout=SCRAPE_TIMEOUT,
            max_bytes=MAX_SCRAPE_BYTES,
            headers={"Accept": "text/plain;version=0.0.4"},
            redirects=3,
        )
    except urlguard.FetchError as exc:
        return None, str(exc)
    if not resp.ok:  # the target's answer is not quoted (the service page shows the error)
        return None, f"HTTP {resp.status_code} from {url}"
    return resp.text, None


def record(target: ScrapeTarget, text, error, t: float, started: float) -> int:
    """Ingest a fetched exposition (or record the failure) and update the target's health."""
    return record_many([(target, text, error, started)], t)


def record_many(fetched, t: float) -> int:
    """Ingest the fetched expositions ``[(target, text, error, started)]`` of a scrape at
    ``t`` together (``ingest_many``) and update the targets' health in one statement. Returns
    the samples stored."""
    stored = ingest_many([(tg, text) for tg, text, error, _ in fetched if error is None], t)
    now = timezone.now()
    for target, _, error, started in fetched:
        n = stored.get(target.pk, 0)
        if isinstance(n, ValueError):  # not Prometheus text format
            error, n = f"unparsable exposition: {n}", 0
        target.last_scrape_at = now
        target.last_duration_ms = (time.monotonic() - started) * 1000
        target.last_samples = n
        target.health = "down" if error else "up"
        target.last_error = (error or "")[:2000]
        if error:
            log.info("scrape of %s failed: %s", target.url, error)
    claims.update_rows([f[0] for f in fetched], HEALTH_FIELDS)
    return sum(f[0].last_samples for f in fetched)


HEALTH_FIELDS = ["last_scrape_at", "last_duration_ms", "last_samples", "health", "last_error"]


def scrape_target(target: ScrapeTarget, t: float | None = None) -> int:
    started = time.monotonic()
    t = round(t if t is not None else time.time(), 3)
    text, error = fetch(target.url)
    return record(target, text, error, t, started)


def scrape_service(service: Service, t: float | None = None) -> int:
    total = 0
    for target in sync_targets(service):
        target.service = service
        total += scrape_target(target, t=t)
    return total


def sync_all_targets() -> int:
    """Mirror every service's ``metrics_urls`` (saving a service does it for that one; this
    catches writes that bypass ``save()``). Returns the services with endpoints."""
    n = 0
    for service in Service.objects.exclude(metrics_urls=[]).only("id", "slug", "metrics_urls"):
        if normalise_entries(service.metrics_urls):
            sync_targets(service)
            n += 1
    return n


def service_saved(sender, instance, created=False, update_fields=None, **kwargs):
    """``post_save`` of ``Service``: its scrape targets follow its ``metrics_urls``."""
    if update_fields is not None and "metrics_urls" not in update_fields:
        return
    if created and not instance.metrics_urls:
        return
    sync_targets(instance)


def claim_due(limit: int = SHARD_SIZE, now=None) -> list[int]:
    """Claim up to ``limit`` due targets (``portal.claims``); the next scrape of each is one
    interval after the one it was due for."""
    now = now or timezone.now()
    step = timedelta(seconds=scrape_interval())
    return claims.claim(
        ScrapeTarget.objects.filter(Q(next_scrape_at__isnull=True) | Q(next_scrape_at__lte=now)),
        "next_scrape_at",
        now + step,
        limit,
        step=step,
        floor=now + step / 2,  # a target that fell behind is scraped again in half an interval
    )


def scrape_shard(ids, threads: int = SCRAPE_THREADS) -> dict:
    """Scrape the targets ``ids`` concurrently (at most ``threads`` fetches at a time, each
    bounded by ``SCRAPE_TIMEOUT``) and ingest what has arrived every ``INGEST_EVERY`` seconds
    together (``record_many``), so one slow or hanging target costs its own timeout and delays
    no other."""
    targets = list(ScrapeTarget.objects.filter(pk__in=claims.ids_in(ids)).select_related("service"))
    summary = {"targets": len(targets), "samples": 0, "down": 0}
    if not targets:
        return summary
    t = round(time.time(), 3)
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(targets)))) as pool:
        pending = {pool.submit(_timed_fetch, tg.url): tg for tg in targets}
        while pending:
            done, _ = wait(pending, timeout=INGEST_EVERY)
            fetched = []
            for future in done:
                (text, error), started = future.result()
                fetched.append((pending.pop(future), text, error, started))
                summary["down"] += error is not None
            if fetched:
                summary["samples"] += record_many(fetched, t)
    return summary


def _timed_fetch(url):
    started = time.monotonic()
    return fetch(url), started


def scrape_all() -> dict:
    """One round over every target here, shard by shard, due or not (tests, ``manage.py`` and
    the embedded mode; beat scrapes what is due, fanned out to workers, ``claim_due``)."""
    summary = {"services": sync_all_targets(), "samples": 0, "targets": 0}
    ids = list(ScrapeTarget.objects.order_by("pk").values_list("pk", flat=True))
    for k in range(0, len(ids), SHARD_SIZE):
        got = scrape_shard(ids[k : k + SHARD_SIZE])
        summary["targets"] += got["targets"]
        summary["samples"] += got["samples"]
    return summary


def purge_old_samples(now: float | None = None, batch: int = 200) -> int:
    """Drop samples older than the retention window.

    Deletes go series by series (batches of ids) so they use the (series_id, t) primary key.
    Samples of deleted series go with them (``monitoring.signals_db``)."""
    cutoff = (now or time.time()) - retention_seconds()
    table = Sample._meta.db_table
    ids = list(Series.objects.order_by("pk").values_list("pk", flat=True))
    n = 0
    with connection.cursor() as cur:
        for k in range(0, len(ids), batch):
            chunk = ids[k : k + batch]
            marks = ",".join(["%s"] * len(chunk))
            cur.execute(
                f"DELETE FROM {table} WHERE series_id IN ({marks}) AND t < %s", [*chunk, cutoff]
            )
            n += cur.rowcount
    trim_reset_logs(cutoff)
    return n


def trim_reset_logs(cutoff: float) -> None:
    """Forget reset-log entries older than ``cutoff`` but the one in force at it (the offset of
    the oldest kept sample), so a series restarted daily does not grow its log forever."""
    changed = []
    for series in Series.objects.exclude(resets=[]).only("pk", "resets"):
        old = [r for r in series.resets if r[0] <= cutoff]
        if len(old) > 1:
            series.resets = series.resets[len(old) - 1 :]
            changed.append(series)
    Series.objects.bulk_update(changed, ["resets"], batch_size=500)
