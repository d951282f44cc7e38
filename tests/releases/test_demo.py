"""The demo, untouched (time scaled down): one release passes analysis and waits for a click,
the other's canary really serves errors, fails analysis and rolls back by itself."""

import threading

import pytest
from django.db import connection

from monitoring.fleet import WEIGHTS_SUBDIR, Fleet, FleetService
from releases import controller, demo
from releases.drivers import read_weight
from releases.models import Environment, Release
from squads.models import Service
from tests.factories import ServiceFactory
from tests.releases.conftest import drive_until, settle, wait_for_traffic


@pytest.mark.django_db(transaction=True)
def test_demo_releases_pass_and_fail_by_themselves(squad, other_squad, settings):
    settings.RELEASES_DEMO_TIME_SCALE = 0.2  # bake 6 s, measurements every 3 s over 12 s
    for name in ("staging", "production"):
        Environment.objects.update_or_create(name=name, defaults={"driver": "local"})
    ServiceFactory(slug="playback-api", name="Playback API", owner=squad)
    ServiceFactory(slug="search-api", name="Search API", owner=other_squad)
    ServiceFactory(slug="home-feed-api", name="Home Feed API", owner=squad)
    # seeded before the fleet runs (as `make run` does): the driver retries until it is up
    demo.seed()
    a = Release.objects.get(service__slug="playback-api", environment__name="staging")
    b = Release.objects.get(service__slug="search-api", environment__name="staging")
    a, b = settle(a), settle(b)  # what the worker does after the seed commits
    assert a.status == b.status == "progressing" and a.weight == 0
    assert "demo fleet running" in a.driver_error
    assert Release.objects.filter(environment__name="production").count() == 5
    edge = Release.objects.get(service__slug="home-feed-api", environment__name="edge")
    assert edge.environment.driver == "haproxy"  # behind the demo fleet's HAProxy
    demo.seed()  # idempotent
    assert Release.objects.count() == 8

    for slug in ("playback-api", "search-api"):
        (settings.VAR_DIR / WEIGHTS_SUBDIR / slug).unlink(missing_ok=True)
    fleet = Fleet(
        [
            FleetService("playback-api", error_rate=0.005, canary_error_rate=0.01),
            FleetService("search-api", error_rate=0.01),
        ],
        weights_dir=settings.VAR_DIR / WEIGHTS_SUBDIR,
    ).start()
    stop = threading.Event()

    def scrape():
        from metrics.scrape import scrape_all

        while not stop.is_set():
            scrape_all()
            stop.wait(0.5)
        connection.close()

    scraper = threading.Thread(target=scrape, daemon=True)
    try:
        for slug in ("playback-api", "search-api"):
            Service.objects.filter(slug=slug).update(metrics_urls=fleet.metrics_urls(slug))
        fleet.start_traffic(rps=40)
        scraper.start()
        for slug in ("playback-api", "search-api"):
            wait_for_traffic(Service.objects.get(slug=slug))
        Release.objects.update(next_tick_at=None)
        b = drive_until(b, lambda r: r.status == "failed", timeout=60)
        assert b.weight == 0 and read_weight("search-api") == 0
        assert "error-ratio failed" in b.message
        a = drive_until(a, lambda r: r.status == "paused" and r.step_index == 3, timeout=60)
        assert a.weight == 10 and read_weight("playback-api") == 10
        assert a.analysis_runs.get().status == "successful"
        assert fleet.set_behaviour("playback-api", "canary")["error_rate"] == 0.005
        controller.tick_all()
        assert Release.objects.get(pk=a.pk).status == "paused"  # waits for a click
    finally:
        stop.set()
        fleet.stop()
        if scraper.is_alive():
            scraper.join(5)
