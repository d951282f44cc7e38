"""History for the demo fleet's first run: the last hours of metrics, so every chart of a new
``make run`` is alive from the first page.

For each fleet instance without any stored sample yet, the exposition its process would have
served is synthesised every ``step`` seconds over the last ``hours`` (the same metric names,
labels and buckets as ``monitoring.fleet_app``: request counters by code, the latency
histogram) and stored through the real ingestion path (``metrics.scrape.ingest``), as scrapes
taken then. Traffic follows a gentle daily curve; latencies follow the process's own
log-normal distribution. When the live scrapes begin, the processes' counters start again from
zero, which the store records as a counter reset, as Prometheus would.
"""

import math
import random
import time

from django.db import connection, transaction

from metrics.models import Sample, Series
from metrics.scrape import ingest_many, sync_targets
from monitoring.fleet import Fleet, FleetService
from monitoring.fleet_app import BUCKETS
from squads.models import Service

STEPS_PER_COMMIT = 10
# SQLite (make run): the pause after each commit in which a writer waiting for the lock gets it.
# Its busy handler retries every 100 ms once it has waited a while; without the pause the next
# BEGIN IMMEDIATE won every time and, on a loaded machine, the worker's tasks gave up after
# their 30 s timeout ("database is locked", a traceback in the terminal) while this ran.
SQLITE_YIELD_SECONDS = 0.15
SIGMA = 0.5  # fleet_app: latency = lognormvariate(0, 0.5) × latency_ms


def _share_below(bound_s: float, latency_ms: float) -> float:
    """P(latency ≤ bound) for the fleet's log-normal latencies."""
    mu = math.log(latency_ms / 1000.0)
    return 0.5 * (1 + math.erf((math.log(bound_s) - mu) / (SIGMA * math.sqrt(2))))


def exposition(slug: str, track: str, ok: float, errors: float, latency_ms: float) -> str:
    labels = f'service="{slug}",track="{track}"'
    total = ok + errors
    lines = [
        "# TYPE http_requests_total counter",
        f'http_requests_total{{{labels},code="200"}} {ok:.0f}',
        f'http_requests_total{{{labels},code="500"}} {errors:.0f}',
        "# TYPE http_request_duration_seconds histogram",
    ]
    for bound in BUCKETS:
        lines.append(
            f'http_request_duration_seconds_bucket{{{labels},le="{bound}"}} '
            f"{total * _share_below(bound, latency_ms):.0f}"
        )
    mean_s = (latency_ms / 1000.0) * math.exp(SIGMA**2 / 2)
    lines += [
        f'http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {total:.0f}',
        f"http_request_duration_seconds_count{{{labels}}} {total:.0f}",
        f"http_request_duration_seconds_sum{{{labels}}} {total * mean_s:.3f}",
    ]
    return "\n".join(lines) + "\n"


def _behaviour(spec: FleetService, track: str) -> tuple[float, float, float]:
    """(share of the traffic, error rate, latency ms) of one track."""
    canary = track == "canary"
    share = (
        spec.canary_weight / 100
        if canary
        else 1 - (spec.canary_weight / 100 if "canary" in spec.tracks else 0)
    )
    err = (
        spec.canary_error_rate if canary and spec.canary_error_rate is not None else spec.error_rate
    )
    lat = (
        spec.canary_latency_ms if canary and spec.canary_latency_ms is not None else spec.latency_ms
    )
    return share, err, lat


def backfill(fleet: Fleet, rps: float, hours: float = 3.0, step: float = 30.0, now=None) -> int:
    """Store the synthesised history of every instance that has none; returns samples stored.
    One ``ingest_many`` per time step for all instances, ten steps per transaction: on the
    first run's SQLite, a commit per scrape took minutes on a busy machine, and the charts
    stayed empty meanwhile. ``step`` 30 s: the 1 h and 6 h charts take rates over 60 s
    windows, which need two scrapes in each (at 60 s apart they drew nothing)."""
    now = now or time.time()
    rng = random.Random(7)
    todo = []  # [target, spec, (share, error rate, latency), [ok, errors]]
    for spec in fleet.services.values():
        service = Service.objects.filter(slug=spec.slug).first()
        if service is None:
            continue
        service.metrics_urls = fleet.metrics_urls(spec.slug)  # not saved: scrapes wait for it
        for target in sync_targets(service):
            if Sample.objects.filter(series__in=Series.objects.filter(target=target)).exists():
                continue
            todo.append((target, spec, _behaviour(spec, target.track), [0.0, 0.0]))
    stored = 0
    t = now - hours * 3600
    while todo and t < now - step:
        # a transaction per STEPS_PER_COMMIT steps: one for all would hold SQLite's write lock
        # for minutes ("database is locked" in the worker); one per step commits too often
        with transaction.atomic():
            for _ in range(STEPS_PER_COMMIT):
                if t >= now - step:
                    break
                stored += _step(todo, rng, rps, step, t)
                t += step
        if connection.vendor == "sqlite":
            time.sleep(SQLITE_YIELD_SECONDS)
    return stored


def _step(todo, rng, rps: float, step: float, t: float) -> int:
    """One synthesised scrape of every instance at ``t``."""
    daily = 1 + 0.35 * math.sin(2 * math.pi * (t % 86400) / 86400 - math.pi / 2)
    scrapes = []
    for target, spec, (share, err, lat), counts in todo:
        n = max(rps * share * daily * step * rng.uniform(0.85, 1.15), 0.0)
        bad = n * err * rng.uniform(0.6, 1.4)
        counts[0] += n - bad
        counts[1] += bad
        scrapes.append((target, exposition(spec.slug, target.track, counts[0], counts[1], lat)))
    return sum(n for n in ingest_many(scrapes, round(t, 3)).values() if isinstance(n, int))
