"""A claimed batch of releases measures its analyses from reads made for the whole batch at
once (issue 16), with the verdicts each release gets driven alone: passing, failing, no data,
too little traffic and a raw query, on samples stored by the real ingestion path."""

import time
from datetime import timedelta

from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from metrics import scrape
from metrics.backends import get_backend
from metrics.models import ScrapeTarget
from releases import analysis, controller, reads
from releases.models import AnalysisRun, AnalysisTemplate, Environment, Measurement, Release
from squads.models import Service

STEP = {"interval": 60, "count": 1, "window": 60, "min_requests": 1}


def exposition(t: float, canary_errors: float) -> str:
    """10 req/s stable (1 % errors) and 2 req/s canary; p99 about 0.5 s on both tracks."""
    lines = ["# TYPE http_requests_total counter"]
    hist = ["# TYPE http_request_duration_seconds histogram"]
    for track, rate, errors in (("stable", 10.0, 0.01), ("canary", 2.0, canary_errors)):
        total = rate * t
        lines.append(f'http_requests_total{{track="{track}",code="200"}} {total * (1 - errors)}')
        lines.append(f'http_requests_total{{track="{track}",code="500"}} {total * errors}')
        for le, share in (("0.1", 0.9), ("0.5", 0.995), ("1.0", 1.0), ("+Inf", 1.0)):
            hist.append(
                f'http_request_duration_seconds_bucket{{track="{track}",le="{le}"}} {total * share}'
            )
    return "\n".join(lines + hist) + "\n"


def _scraped(squad, slug, canary_errors, at):
    service = Service.objects.create(slug=slug, name=slug, owner=squad, lifecycle="production")
    if canary_errors is not None:  # None: a service that exposes nothing (no data)
        target = ScrapeTarget.objects.create(service=service, url="http://127.0.0.1:9/metrics")
        target.service = service
        for k in range(6):  # every 15 s up to `at`, as a scrape would
            t = at - 75 + 15 * k
            scrape.ingest(target, exposition(t - at + 1000, canary_errors), round(t, 3))
    return service


def _release(service, env, template, **overrides):
    mets = analysis.resolve_metrics(template, {**STEP, **overrides})
    now = timezone.now()
    r = Release.objects.create(
        service=service,
        environment=env,
        version="2",
        strategy=[
            {"set_weight": 20},
            {"analysis": {"template": template.name, **STEP}},
            {"set_weight": 100},
        ],
        status="progressing",
        step_index=1,
        weight=20,
        desired_weight=20,
        started_at=now,
        next_tick_at=now - timedelta(seconds=1),
    )
    AnalysisRun.objects.create(
        release=r,
        generation=r.generation,
        step_index=1,
        weight=20,
        template=template.name,
        metrics=mets,
        status="running",
        started_at=now - timedelta(seconds=120),
        next_measure_at=now - timedelta(seconds=1),
    )
    return r.pk


def _outcome(ids):
    releases = {
        r.pk: (r.status, r.step_index, r.desired_weight, r.message)
        for r in Release.objects.filter(pk__in=ids)
    }
    measured = {
        (m.analysis_run.release_id, m.metric): (
            m.phase,
            m.value,
            m.stable_value,
            m.canary_requests,
            m.threshold,
            m.message,
        )
        for m in Measurement.objects.filter(analysis_run__release_id__in=ids).select_related(
            "analysis_run"
        )
    }
    return releases, measured


def _sample_reads(ctx):
    return sum("FROM monitoring_sample" in q["sql"] for q in ctx.captured_queries)


def _rolled_back(fn):
    """What ``fn`` does to the releases, then undone (the other way is driven from the same
    rows)."""
    with transaction.atomic():
        sid = transaction.savepoint()
        with CaptureQueriesContext(connection) as ctx:
            ids = fn()
        got = _outcome(ids)
        transaction.savepoint_rollback(sid)
    return got, _sample_reads(ctx)


def test_a_batch_measures_with_one_read_and_the_verdicts_of_one_by_one(squad):
    at = time.time()
    env = Environment.objects.create(name="prod")
    golden = AnalysisTemplate.objects.create(
        name="golden",
        metrics=[
            {"name": "error-ratio", "kind": "error_ratio", "max": 0.05},
            {"name": "latency-p99", "kind": "p99", "max_ms": 1000},
        ],
    )
    raw = AnalysisTemplate.objects.create(
        name="raw",
        metrics=[
            {
                "name": "traffic",
                "kind": "query",
                "query": 'sum(rate(http_requests_total{service="passing"}[1m]))',
                "condition": "result > 1",
            }
        ],
    )
    ids = [
        _release(_scraped(squad, "passing", 0.01, at), env, golden),
        _release(_scraped(squad, "failing", 0.5, at), env, golden),
        _release(_scraped(squad, "silent", None, at), env, golden),
        _release(_scraped(squad, "thin", 0.01, at), env, golden, min_requests=100_000),
        _release(Service.objects.get(slug="passing"), Environment.objects.create(name="qa"), raw),
    ]

    def batch():
        assert controller.drive_claimed(ids, at=at) == len(ids)
        return ids

    def one_by_one():
        for pk in ids:  # each alone, its own reads, at the same time
            with reads.using(reads.Reads(get_backend(), at)):
                assert controller.advance(pk) != "skipped"
        return ids

    (batch_releases, batch_measured), batch_reads = _rolled_back(batch)
    (alone_releases, alone_measured), alone_reads = _rolled_back(one_by_one)
    assert batch_releases == alone_releases
    assert batch_measured == alone_measured
    # one sample read for the golden signals of the four services, one for the raw query;
    # alone: one per release that has series (the silent one has none to read)
    assert (batch_reads, alone_reads) == (2, 4)

    passing, failing, silent, thin, query = (batch_releases[pk] for pk in ids)
    assert passing[:3] == ("progressing", 2, 100)  # analysis passed: on to the next step
    assert query[:3] == ("progressing", 2, 100)
    assert failing[0] == "failed" and "error-ratio failed" in failing[3]
    assert silent[0] == "paused" and "too little canary traffic: 0" in silent[3]
    assert thin[0] == "paused" and "too little canary traffic" in thin[3]
    phases = {key: m[0] for key, m in batch_measured.items()}
    assert phases == {
        (ids[0], "error-ratio"): "successful",
        (ids[0], "latency-p99"): "successful",
        (ids[1], "error-ratio"): "failed",
        (ids[1], "latency-p99"): "successful",
        (ids[2], "error-ratio"): "inconclusive",
        (ids[2], "latency-p99"): "inconclusive",
        (ids[3], "error-ratio"): "inconclusive",
        (ids[3], "latency-p99"): "inconclusive",
        (ids[4], "traffic"): "successful",
    }
    assert 0.4 < batch_measured[(ids[1], "error-ratio")][1] < 0.6  # the canary's 50 %
