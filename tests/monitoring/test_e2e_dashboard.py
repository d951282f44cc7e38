"""Playwright: the service dashboard redraws its charts in place (no reload) while real
traffic is scraped; pausing stops the refresh."""

import threading
import time

import pytest
from django.db import connection

from metrics.scrape import scrape_service
from monitoring.models import Alert, AlertRule
from tests.conftest import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def scraping(checkout, fleet):
    """Traffic plus a scrape every second, in the background, while the browser watches."""
    stop = threading.Event()
    fleet.set_behaviour("checkout", "canary", error_rate=0.2)
    fleet.set_weight("checkout", 25)
    fleet.start_traffic(rps=25)

    def loop():
        try:
            while not stop.is_set():
                scrape_service(checkout)
                stop.wait(1.0)
        finally:
            connection.close()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield
    stop.set()
    t.join(10)
    fleet.stop_traffic()


def _path(page, signal):
    return page.eval_on_selector(
        f"#chart-{signal}",
        "svg => Array.from(svg.querySelectorAll('path')).map(p => p.getAttribute('d')).join('|')",
    )


def test_dashboard_updates_without_reload(page, live_server, login, alice, checkout, scraping):
    rule = AlertRule.objects.create(
        service=checkout, name="Canary errors", signal="error_ratio", track="canary", threshold=0.05
    )
    Alert.objects.create(
        rule=rule,
        service=checkout,
        state="firing",
        severity="critical",
        summary="Canary errors high",
    )
    time.sleep(3)
    login(page, alice)
    page.goto(f"{live_server.url}/dashboards/services/checkout/?range=15m")
    page.evaluate("window.__noReload = 'still here'")
    page.wait_for_selector("#chart-request_rate")
    first_stamp = page.get_attribute("#panels", "data-rendered-at")
    first_path = _path(page, "request_rate")
    # the chart is redrawn in place: same document, new data
    page.wait_for_function(
        "([stamp]) => document.querySelector('#panels').dataset.renderedAt !== stamp",
        arg=[first_stamp],
        timeout=15000,
    )
    deadline = time.monotonic() + 35
    while time.monotonic() < deadline and _path(page, "request_rate") == first_path:
        time.sleep(0.5)
    assert _path(page, "request_rate") != first_path
    assert "M" in _path(page, "request_rate")  # data drawn, not just "no data"
    assert page.evaluate("window.__noReload") == "still here"
    legend = page.eval_on_selector("#chart-request_rate", "svg => svg.textContent")
    assert "stable:" in legend and "req/s" in legend
    screenshot(page, "monitoring-service-dashboard")

    # pause: no more refreshes
    page.uncheck("#live-toggle")
    time.sleep(0.5)
    paused_stamp = page.get_attribute("#panels", "data-rendered-at")
    time.sleep(6)
    assert page.get_attribute("#panels", "data-rendered-at") == paused_stamp

    # the service page's lazy panel, squad overview, alerts page and the status board
    page.goto(f"{live_server.url}/dashboards/squads/playback/")
    page.wait_for_selector("text=Checkout")
    screenshot(page, "monitoring-squad-dashboard")
    page.goto(f"{live_server.url}/alerts/")
    page.wait_for_selector("text=Canary errors")
    screenshot(page, "monitoring-alerts")
    page.goto(f"{live_server.url}/")
    page.wait_for_selector("#board-alerts >> text=Canary errors")
    page.goto(f"{live_server.url}/dashboards/")
    screenshot(page, "monitoring-index")
    page.goto(f"{live_server.url}/services/checkout/")
    page.wait_for_selector("#monitoring-service-panel svg", timeout=15000)
    screenshot(page, "monitoring-service-panel")
