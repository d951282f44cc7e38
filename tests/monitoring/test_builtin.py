"""Builtin backend against real /metrics endpoints (real HTTP processes, real parser, real
PostgreSQL), including a counter reset."""

import math
import re

import pytest

from metrics import signals as sig
from metrics.backends.builtin import BuiltinBackend
from metrics.models import Sample, ScrapeTarget, Series
from metrics.scrape import purge_old_samples, scrape_service
from tests.conftest import client_for
from tests.factories import ServiceFactory

T0 = 1_699_999_995.0  # a multiple of 15: evaluation times are step-aligned


def signals_at(service, t, tracks=("stable",), window=60):
    return BuiltinBackend().golden_signals(service, list(tracks), t, t, 15, window)


def test_rate_and_error_ratio_survive_a_counter_reset(checkout, fleet):
    fleet.set_behaviour("checkout", "stable", error_rate=1.0)
    fleet.send("checkout", 2, track="stable")
    fleet.set_behaviour("checkout", "stable", error_rate=0.0)
    fleet.send("checkout", 10, track="stable")
    assert scrape_service(checkout, t=T0) > 0  # ok 10, errors 2
    fleet.send("checkout", 20, track="stable")
    scrape_service(checkout, t=T0 + 15)  # ok 30, errors 2
    fleet.restart("checkout", "stable")  # the process dies: its counters start again from 0
    fleet.send("checkout", 5, track="stable")
    fleet.set_behaviour("checkout", "stable", error_rate=1.0)
    fleet.send("checkout", 3, track="stable")
    scrape_service(checkout, t=T0 + 30)  # raw ok 5 (< 30), raw errors 3 (> 2, but a new _created)

    ok = Series.objects.get(
        service=checkout, name="http_requests_total", track="stable", code="200"
    )
    err = Series.objects.get(
        service=checkout, name="http_requests_total", track="stable", code="500"
    )
    assert ok.offset == 30 and err.offset == 2  # both resets detected
    stored = list(Sample.objects.filter(series=err).order_by("t").values_list("value", flat=True))
    assert stored == [2, 2, 5]
    data = signals_at(checkout, T0 + 30)["stable"]
    # Prometheus' rate over [T0-30, T0+30] (samples at T0, +15, +30; 15 s apart, so the
    # extrapolation threshold is 16.5 s). ok: 10 → 35 (+25); the zero point is
    # 30 s · 10/25 = 12 s before the first sample (< 16.5: extrapolate to it), none at the end.
    ok_rate = 25 * (30 + 12) / 30 / 60
    # errors 2 → 5 (+3, the new _created makes 3 a reset); zero point 30 · 2/3 = 20 s away,
    # beyond the threshold: half an interval (7.5 s)
    err_rate = 3 * (30 + 7.5) / 30 / 60
    assert data["request_rate"][0][1] == pytest.approx(ok_rate + err_rate, rel=1e-9)
    assert data["error_ratio"][0][1] == pytest.approx(err_rate / (ok_rate + err_rate), rel=1e-9)
    # the raw (unadjusted) view would have been a negative rate; nothing is ever negative here
    assert all(v is None or v >= 0 for _, v in data["request_rate"])
    # an instant selector answers what the target exposes now (5 and 3), not the stored 35 / 5
    b = BuiltinBackend()
    got = {
        r.labels["code"]: r.points[0][1]
        for r in b.instant('http_requests_total{service="checkout",track="stable"}', at=T0 + 30)
    }
    assert got == {"200": 5, "500": 3}
    assert ok.resets[-1] == [T0 + 30, 30] and err.resets[-1] == [T0 + 30, 2]
    # before the reset, the value exposed then
    got = b.instant('http_requests_total{service="checkout",code="200"}', at=T0 + 15)
    assert [r.points[0][1] for r in got] == [30]


def test_latency_quantiles_from_real_histograms(checkout, fleet):
    fleet.send("checkout", 5, track="canary")
    scrape_service(checkout, t=T0)
    fleet.send("checkout", 200, track="canary")
    scrape_service(checkout, t=T0 + 15)
    data = signals_at(checkout, T0 + 15, tracks=("canary",))["canary"]
    p50, p95, p99 = (data[k][0][1] for k in ("p50", "p95", "p99"))
    assert 0 < p50 <= p95 <= p99 <= 5.0
    # latency around 30 ms: the median lies in the 10–75 ms buckets
    assert 0.01 <= p50 <= 0.075
    # check against the histogram itself: the share of observations below p95 bound
    buckets = {
        s.le: s
        for s in Series.objects.filter(
            service=checkout, name="http_request_duration_seconds_bucket", track="canary"
        )
    }
    values = {
        le: list(Sample.objects.filter(series=s).order_by("t").values_list("value", flat=True))
        for le, s in buckets.items()
    }
    increases = [(le, v[-1] - v[0]) for le, v in values.items()]
    assert max(inc for _, inc in increases) == 200

    # Prometheus extrapolates each bucket's rate over [T0-45, T0+15] (two samples 15 s apart,
    # threshold 16.5 s): to the counter's zero point when it is that close, else by 7.5 s
    def extrapolated(v):
        inc = v[-1] - v[0]
        if inc <= 0:
            return inc
        to_zero = 15 * v[0] / inc
        return inc * (15 + (to_zero if to_zero < 16.5 else 7.5)) / 15

    rates = [(le, extrapolated(v)) for le, v in values.items()]
    assert sig.histogram_quantile(0.95, rates) == pytest.approx(p95)


def test_no_traffic_and_missing_series_are_no_data_not_zero(checkout, fleet, squad):
    scrape_service(checkout, t=T0)
    scrape_service(checkout, t=T0 + 15)
    data = signals_at(checkout, T0 + 15)["stable"]
    # no request was ever made: the labelled series do not exist at all
    assert all(data[s][0][1] is None for s in ("request_rate", "error_ratio", "p50", "p99"))
    fleet.send("checkout", 3, track="stable")
    scrape_service(checkout, t=T0 + 30)
    scrape_service(checkout, t=T0 + 45)
    scrape_service(checkout, t=T0 + 60)
    # traffic stopped: the rate is a real 0, the error ratio has no denominator → no data
    data = signals_at(checkout, T0 + 60, window=30)["stable"]
    assert data["request_rate"][0][1] == 0
    assert data["error_ratio"][0][1] is None
    assert data["p95"][0][1] is None
    # a service with nothing registered: every signal is None
    other = ServiceFactory(slug="silent", owner=squad, metrics_urls=[])
    data = signals_at(other, T0)["stable"]
    assert all(v is None for points in data.values() for _, v in points)


def test_unreachable_target_is_marked_down(db, squad):
    svc = ServiceFactory(slug="gone", owner=squad, metrics_urls=["http://127.0.0.1:9/metrics"])
    assert scrape_service(svc, t=T0) == 0
    target = ScrapeTarget.objects.get(service=svc)
    assert target.health == "down"
    assert "could not connect" in target.last_error and "Connection refused" in target.last_error


def test_retention_purges_old_samples(checkout, fleet, settings):
    settings.MONITORING_RETENTION_HOURS = 1
    fleet.send("checkout", 2, track="stable")
    scrape_service(checkout, t=T0)
    scrape_service(checkout, t=T0 + 7200)
    before = Sample.objects.count()
    series = Series.objects.filter(kind="counter").first()
    series.resets = [[T0 - 10, 5.0], [T0 + 1, 7.0], [T0 + 3700, 9.0]]
    series.save(update_fields=["resets"])
    removed = purge_old_samples(now=T0 + 7200)
    assert removed > 0
    # the reset log keeps the entry in force at the cutoff (T0 + 3600) and the later ones
    series.refresh_from_db()
    assert series.resets == [[T0 + 1, 7.0], [T0 + 3700, 9.0]]
    assert Sample.objects.count() == before - removed
    assert not Sample.objects.filter(t__lt=T0 + 3600).exists()
    # removing the endpoint from the catalog drops its series and their samples
    stable_series = set(Series.objects.filter(track="stable").values_list("pk", flat=True))
    assert Sample.objects.filter(series_id__in=stable_series).exists()
    checkout.metrics_urls = [u for u in checkout.metrics_urls if u["track"] != "stable"]
    checkout.save()
    from metrics.scrape import sync_targets

    sync_targets(checkout)
    assert ScrapeTarget.objects.filter(service=checkout).count() == 1
    live = set(Series.objects.values_list("pk", flat=True))
    assert set(Sample.objects.values_list("series_id", flat=True)) <= live
    assert not Sample.objects.filter(series_id__in=stable_series).exists()


def test_small_promql_subset(checkout, fleet):
    fleet.send("checkout", 10, track="stable")
    scrape_service(checkout, t=T0)
    fleet.send("checkout", 30, track="stable")
    scrape_service(checkout, t=T0 + 30)
    b = BuiltinBackend()
    res = b.instant(
        'sum(rate(http_requests_total{service="checkout",track="stable"}[1m]))', at=T0 + 30
    )
    # 10 → 40 over [T0-30, T0+30], samples 30 s apart: extrapolated to the zero point
    # 30 · 10/30 = 10 s before the first sample (Prometheus: 30 · 40/30 / 60)
    assert res[0].points[0][1] == pytest.approx(30 * (30 + 10) / 30 / 60)
    res = b.instant('http_requests_total{service="checkout",code="200"}', at=T0 + 30)
    assert [r.points[0][1] for r in res] == [40]
    q = b.instant(
        "histogram_quantile(0.5, sum by (le) "
        '(rate(http_request_duration_seconds_bucket{service="checkout"}[1m])))',
        at=T0 + 30,
    )
    assert 0 < q[0].points[0][1] < 1
    from metrics.backends import BackendError

    with pytest.raises(BackendError, match="does not support the quantile_over_time"):
        b.instant("quantile_over_time(0.5, x[5m])")
    with pytest.raises(BackendError, match="bad duration"):
        b.instant("rate(x[5 minutes])")


def test_signals_api(checkout, fleet, alice, charlie):
    fleet.send("checkout", 4)
    scrape_service(checkout)
    c = client_for(charlie)
    r = c.get("/api/v1/services/checkout/signals?range=15m&track=canary")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["backend"] == "builtin" and body["step"] == 15
    assert set(body["tracks"]) == {"canary"}
    assert set(body["tracks"]["canary"]) == {"request_rate", "error_ratio", "p50", "p95", "p99"}
    points = body["tracks"]["canary"]["request_rate"]["points"]
    assert len(points) >= 59 and all(len(p) == 2 for p in points)
    r = c.get("/api/v1/services/checkout/signals?range=2w")
    assert r.status_code == 400
    assert "range must be one of 15m, 1h, 6h, 24h, 7d" in r.json()["message"]
    r = c.get("/api/v1/services/checkout/signals?track=blue")
    assert r.status_code == 400 and "track" in r.json()["message"]
    assert c.get("/api/v1/services/nope/signals").status_code == 404
    from rest_framework.test import APIClient

    assert APIClient().get("/api/v1/services/checkout/signals").status_code == 401


def test_quantile_matches_prometheus_semantics():
    inf = math.inf
    # 100 observations: 50 ≤ 0.1, 40 in (0.1, 0.5], 10 in (0.5, inf)
    buckets = [(0.1, 50), (0.5, 90), (inf, 100)]
    assert sig.histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert sig.histogram_quantile(0.7, buckets) == pytest.approx(0.1 + 0.4 * 20 / 40)
    assert sig.histogram_quantile(0.95, buckets) == 0.5  # in the +Inf bucket: last finite bound
    assert math.isnan(sig.histogram_quantile(0.5, [(0.1, 0), (inf, 0)]))  # no observations
    assert math.isnan(sig.histogram_quantile(0.5, [(0.1, 3)]))  # no +Inf bucket


def test_long_ranges_are_downsampled_in_sql_with_the_same_answer(db, squad):
    """24 h / 7 d ranges read one sample per step bucket (MAX of a monotonic counter); the rate
    they give equals the one computed from every sample."""
    from metrics.backends.builtin import load_samples

    svc = ServiceFactory(slug="long", owner=squad, metrics_urls=["http://127.0.0.1:1/metrics"])
    # saving the service made its target
    target = ScrapeTarget.objects.get(service=svc, url="http://127.0.0.1:1/metrics")
    series = Series.objects.create(
        target=target,
        service=svc,
        name="http_requests_total",
        kind="counter",
        labels={"service": "long", "track": "stable", "code": "200"},
        key='code="200",service="long",track="stable"',
        track="stable",
        code="200",
    )
    start = T0 - 4 * 3600
    Sample.objects.bulk_create(
        [
            Sample(series_id=series.pk, t=start + 15 * i, value=2.0 * 15 * i)
            for i in range(4 * 240 + 1)
        ]
    )
    full = load_samples([series.pk], start, T0, 15)[series.pk]
    coarse = load_samples([series.pk], start, T0, 300)[series.pk]
    assert len(full[0]) == 961 and 96 <= len(coarse[0]) <= 98  # first + last sample per bucket
    data = BuiltinBackend().golden_signals(svc, ["stable"], start + 3600, T0, 300, 600)["stable"]
    rates = [v for _, v in data["request_rate"]]
    assert len(rates) >= 36 and all(v == pytest.approx(2.0) for v in rates)


def test_scrape_round_and_due_claims(checkout, fleet):
    from metrics import scrape

    fleet.send("checkout", 3, track="stable")
    ServiceFactory(slug="dead", owner=checkout.owner, metrics_urls=["http://127.0.0.1:9/metrics"])
    result = scrape.scrape_all()
    assert result["services"] == 2 and result["targets"] == 3 and result["samples"] > 0
    health = dict(ScrapeTarget.objects.values_list("service__slug", "health").order_by("health"))
    assert health == {"dead": "down", "checkout": "up"}
    # beat's path: every target is due once, then not again until its interval has passed
    claimed = scrape.claim_due(limit=10)
    assert sorted(claimed) == sorted(ScrapeTarget.objects.values_list("pk", flat=True))
    assert scrape.claim_due(limit=10) == []
    got = scrape.scrape_shard(claimed)
    assert got["targets"] == 3 and got["down"] == 1 and got["samples"] > 0


def test_batched_quantiles_equal_the_reference_function():
    import random

    rng = random.Random(7)
    les = [0.01, 0.05, 0.1, 0.5, 1.0, math.inf]
    columns = {le: [] for le in les}
    for _ in range(300):
        running = 0.0
        empty = rng.random() < 0.1
        for le in les:
            running += 0 if empty else rng.random() * 3
            columns[le].append(running)
    got = sig.quantiles_over_time((0.5, 0.9, 0.99), columns)
    for k in range(300):
        buckets = [(le, columns[le][k]) for le in les]
        for q in (0.5, 0.9, 0.99):
            want = sig.histogram_quantile(q, buckets)  # NaN (no data) → None
            assert got[q][k] == (None if math.isnan(want) else want)


def test_histogram_quantile_edge_cases_as_prometheus():
    inf = math.inf
    buckets = [(0.1, 50), (0.5, 90), (inf, 100)]
    assert math.isnan(sig.histogram_quantile(math.nan, buckets))
    assert sig.histogram_quantile(-0.1, buckets) == -inf
    assert sig.histogram_quantile(1.5, buckets) == inf
    assert sig.histogram_quantile(-0.1, [(0.1, 3)]) == -inf  # q is checked before the buckets
    assert math.isnan(sig.histogram_quantile(0.5, [(inf, 10)]))  # fewer than two buckets
    # an empty first bucket: interpolated from the lower bound 0 of the next one up
    assert sig.histogram_quantile(0.5, [(0.1, 0), (0.2, 10), (inf, 10)]) == pytest.approx(0.15)
    # counts that go down are made monotonic; equal bounds ("0.2" and "2e-1") are merged
    assert sig.histogram_quantile(0.5, [(0.1, 4), (0.2, 3), (inf, 8)]) == pytest.approx(0.1)
    assert sig.histogram_quantile(0.5, [(0.2, 2), (0.2, 2), (inf, 4)]) == pytest.approx(0.1)


def test_rate_extrapolates_like_prometheus_for_a_new_series():
    # 10 s of a counter at 20/s (0 → 200, one sample a second) in a 1 m window: Prometheus
    # extrapolates to the zero point and the window's end, 200 / 60 = 3.33/s (not 20/s)
    ts = [1000.0 + k for k in range(11)]
    vs = [20.0 * k for k in range(11)]
    assert sig.rate(ts, vs, [1010.0], 60) == [pytest.approx(200 / 60)]
    # the series ended 30 s ago: extrapolated by half an interval only
    assert sig.rate(ts, vs, [1040.0], 60) == [pytest.approx(200 * 10.5 / 10 / 60)]
    # a reset (200 → 5): the lost 200 is added back; irate sees the raw 5 over 1 s
    ts2, vs2 = [*ts, 1011.0], [*vs, 5.0]
    i, j = sig.window_bounds(ts2, 1011.0, 60)
    assert sig.extrapolated_rate(ts2, vs2, i, j, 1011.0, 60, per_second=False) == pytest.approx(
        205 * 11 / 11
    )
    assert sig.instant_rate(ts2, vs2, i, j) == 5.0


def test_bad_queries_are_errors_naming_the_construct(db):
    from metrics.backends import BackendError

    b = BuiltinBackend()
    cases = {
        "sum by le (rate(x_bucket[5m]))": "`by` needs a parenthesised label list",
        "rate(x[5m]": "unexpected end of the query at 10: expected ',' or ')'",
        "rate(x)": "rate() needs a range selector",
        "x offset 5m": "the offset modifier (unsupported construct)",
        "topk(3, x)": "the topk() aggregation",
        "rate(x[5m:1m])": "subqueries",
        "x * on(a) group_left y": "group_left",
        "nosuchfn(x)": "unknown function nosuchfn()",
        "(" * 500 + "x" + ")" * 500: "nests more than 64 levels",
        "-" * 5000 + "1": "nests more than 64 levels",
        'x{a=~"("}': "bad regular expression",
        "{}": "a metric name or at least one label matcher",
    }
    for query, message in cases.items():
        with pytest.raises(BackendError, match=re.escape(message)):
            b.instant(query, at=T0)


def test_a_series_no_longer_scraped_disappears_after_the_lookback(checkout, fleet):
    fleet.send("checkout", 3, track="stable")
    scrape_service(checkout, t=T0)
    q = 'http_requests_total{service="checkout",track="stable"}'
    b = BuiltinBackend()
    assert [r.points[0][1] for r in b.instant(q, at=T0 + 300)] == [3]  # 5 min: still there
    assert b.instant(q, at=T0 + 301) == []  # Prometheus' lookback delta has passed
    assert b.instant(f"sum({q})", at=T0 + 301) == []
    # a range function needs samples in its own window, not the lookback
    assert b.instant(f"rate({q}[5m])", at=T0 + 60) == []  # one sample: no rate
