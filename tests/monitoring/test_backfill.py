"""The demo's first-run history: synthesised scrapes through the real ingestion path read back
by the builtin backend as the traffic, errors and latency the fleet's processes produce."""

import time

import pytest

from metrics.backends import get_backend, range_spec
from metrics.models import Series
from metrics.scrape import scrape_service
from monitoring.backfill import backfill
from monitoring.fleet import Fleet, FleetService
from squads.models import Service
from tests.factories import ServiceFactory


@pytest.fixture
def fleet(db, squad):
    ServiceFactory(slug="playback-api", owner=squad)
    f = Fleet([FleetService("playback-api", error_rate=0.05, latency_ms=40, canary_weight=20)])
    f.start()
    yield f
    f.stop()


def _last(points):
    return next((v for _, v in reversed(points) if v is not None), None)


def test_backfill_reads_back_as_the_fleets_traffic(fleet):
    now = time.time()
    stored = backfill(fleet, rps=4.0, hours=1.0, now=now)
    assert stored > 0
    svc = Service.objects.get(slug="playback-api")
    svc.metrics_urls = fleet.metrics_urls("playback-api")
    # read as the service page's default chart does (last hour: 15 s steps, 60 s rate windows)
    spec = range_spec("1h")
    data = get_backend().golden_signals(
        svc, ["stable", "canary"], now - 3000, now - 120, spec.step, spec.window
    )
    drawn = [v for _, v in data["stable"]["request_rate"] if v is not None]
    assert len(drawn) > 0.9 * len(data["stable"]["request_rate"]), "a chart with gaps"
    stable, canary = _last(data["stable"]["request_rate"]), _last(data["canary"]["request_rate"])
    # 4 req/s split 80/20, within the daily curve (±35 %) and the noise
    assert 4.0 * 0.8 * 0.5 < stable < 4.0 * 0.8 * 1.6, stable
    assert 4.0 * 0.2 * 0.5 < canary < 4.0 * 0.2 * 1.6, canary
    assert 0.02 < _last(data["stable"]["error_ratio"]) < 0.09
    p50 = _last(data["stable"]["p50"])  # the log-normal's median is latency_ms
    assert 0.025 < p50 < 0.06, p50
    assert backfill(fleet, rps=4.0, hours=1.0, now=now) == 0  # only the first run

    # the live scrape after it: the processes' counters start from zero (a counter reset)
    fleet.send("playback-api", 10, track="stable")
    svc.save(update_fields=["metrics_urls"])
    assert scrape_service(svc) > 0
    total = Series.objects.get(service=svc, name="http_requests_total", track="stable", code="200")
    assert total.resets, "the live counter restarting from zero is a reset"
