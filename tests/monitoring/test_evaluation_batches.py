"""Alert rules in claimed batches (issue 16) fire and resolve as one by one; a scrape shard
with a hanging target scrapes the others. Real scraped data, real HTTP, real PostgreSQL."""

import socket
import time

from django.utils import timezone

from metrics import scrape
from metrics.backends.builtin import BuiltinBackend
from metrics.models import ScrapeTarget
from monitoring import evaluation
from monitoring.models import Alert, AlertRule
from tests.factories import ServiceFactory


def _traffic(fleet, service, n=3, per=20):
    for _ in range(n):
        fleet.send("checkout", per, track="stable")
        scrape.scrape_service(service)
        time.sleep(0.4)


def _until(fleet, service, ids, backend, outcome, timeout=60):
    """Traffic, scrape, evaluate the batch ``ids`` until one rule reaches ``outcome`` (the data
    of a 3 s window needs two scrapes in it, however slow the machine)."""
    deadline = time.monotonic() + timeout
    while True:
        _traffic(fleet, service, n=1, per=25)
        got = evaluation.evaluate_batch(ids, backend)
        if outcome in got or time.monotonic() > deadline:
            return got


def test_a_batch_fires_and_resolves_like_rule_by_rule(checkout, fleet, squad):
    other = ServiceFactory(slug="quiet", owner=squad)  # no data: never fires
    mk = dict(track="stable", severity="critical")
    errors = AlertRule.objects.create(
        service=checkout, name="errors", signal="error_ratio", threshold=0.2, window_seconds=3, **mk
    )
    busy = AlertRule.objects.create(
        service=checkout,
        name="busy",
        signal="request_rate",
        threshold=0.001,
        window_seconds=30,
        **mk,
    )
    quiet = AlertRule.objects.create(
        service=other, name="quiet", signal="request_rate", threshold=0.001, window_seconds=30, **mk
    )
    slow = AlertRule.objects.create(
        service=checkout, name="slow", query="sum(rate(http_requests_total[30s]))", threshold=1e9
    )
    backend = BuiltinBackend()
    # one read for the batch: the busy service has traffic, the quiet one no data (not 0); the
    # signal's evaluation time is step-aligned, so wait until scraped samples are behind it
    deadline = time.monotonic() + 60
    while True:
        _traffic(fleet, checkout, n=1)
        values = evaluation._values(list(AlertRule.objects.select_related("service")), backend)
        if values[busy.pk][0] is not None or time.monotonic() > deadline:
            break
    assert values[quiet.pk] == (None, "") and values[busy.pk][0] > 0
    assert values[slow.pk][0] > 0 and values[slow.pk][1] == ""
    assert sorted(evaluation.claim_due()) == sorted([errors.pk, busy.pk, quiet.pk, slow.pk])
    assert evaluation.claim_due() == []  # claimed: not due again within the interval
    got = evaluation.evaluate_batch([errors.pk, busy.pk, quiet.pk, slow.pk], backend)
    assert got == {"firing": 1, "unchanged": 3}
    # a batch whose every value is "no data" records it too (a CASE of NULLs only is typed)
    assert evaluation.evaluate_batch([quiet.pk], backend) == {"unchanged": 1}
    assert AlertRule.objects.get(pk=quiet.pk).last_value is None
    assert Alert.objects.get(rule=busy).state == "firing"
    # the service starts failing: the error rule fires, the busy one stays firing
    fleet.set_behaviour("checkout", "stable", error_rate=0.7)
    assert _until(fleet, checkout, [errors.pk, busy.pk], backend, "firing") == {
        "firing": 1,
        "unchanged": 1,
    }
    alert = Alert.objects.get(rule=errors)
    assert alert.state == "firing" and alert.value > 0.2
    assert AlertRule.objects.get(pk=errors.pk).last_value == alert.last_value
    # healthy again: it resolves
    fleet.set_behaviour("checkout", "stable", error_rate=0.0)
    assert _until(fleet, checkout, [errors.pk], backend, "resolved") == {"resolved": 1}
    assert Alert.objects.get(rule=errors).state == "resolved"
    assert Alert.objects.filter(rule=busy, state="firing").count() == 1


def test_a_hanging_target_does_not_hold_up_its_shard(checkout, fleet, squad, monkeypatch):
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(8)  # accepts connections, never answers
    monkeypatch.setattr(scrape, "SCRAPE_TIMEOUT", 2.0)
    try:
        url = f"http://127.0.0.1:{hang.getsockname()[1]}/metrics"
        ServiceFactory(slug="hangs", owner=squad, metrics_urls=[url])
        fleet.send("checkout", 5, track="stable")
        ids = list(ScrapeTarget.objects.values_list("pk", flat=True))
        assert len(ids) == 3  # checkout stable + canary, and the hanging one
        got = scrape.scrape_shard(ids, threads=2)
    finally:
        hang.close()
    assert got["targets"] == 3 and got["down"] == 1 and got["samples"] > 0
    hung = ScrapeTarget.objects.get(url=url)
    assert hung.health == "down" and "tim" in hung.last_error.lower()
    up = ScrapeTarget.objects.filter(service=checkout)
    assert {t.health for t in up} == {"up"}
    # the others were stored as soon as they answered, before the hanging one gave up
    assert all(t.last_scrape_at < hung.last_scrape_at for t in up)
    assert hung.last_scrape_at <= timezone.now()
