"""Alerts end to end: real scraped data, rule evaluation, pending → firing → resolved, and
signed webhook notifications delivered by a real Celery worker (with a retry)."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from metrics.scrape import scrape_service
from monitoring import services
from monitoring.models import Alert, AlertRule, Delivery, NotificationChannel
from portal import outbound
from portal.actors import Actor
from portal.models import AuditEvent
from tests.conftest import client_for, token_client

SECRET = "receiver-secret-1"


class Receiver:
    """A local HTTP endpoint recording what it receives; fails the first ``fail_first``."""

    def __init__(self, fail_first=0):
        self.requests = []
        self.fail_first = fail_first
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.requests.append({"headers": dict(self.headers), "body": body})
                code = 503 if len(outer.requests) <= outer.fail_first else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, n, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.requests) >= n:
                return self.requests
            time.sleep(0.1)
        raise AssertionError(f"expected {n} requests, got {len(self.requests)}")

    def close(self):
        self.server.shutdown()


@pytest.fixture
def receivers():
    made = []

    def make(**kw):
        r = Receiver(**kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def _traffic_and_scrape(fleet, service, n=3, per=10):
    for _ in range(n):
        fleet.send("checkout", per, track="stable")
        scrape_service(service)
        time.sleep(0.4)


@pytest.mark.worker
def test_alert_fires_and_resolves_with_signed_notifications(
    checkout, fleet, squad, celery_worker_proc, receivers
):
    signed = receivers()
    flaky = receivers(fail_first=1)
    NotificationChannel.objects.create(
        squad=squad, name="ops hook", kind="webhook", url=signed.url, secret=SECRET
    )
    NotificationChannel.objects.create(squad=squad, name="chat", kind="slack", url=flaky.url)
    actor = Actor.system("test", door="command")
    rule = services.create_alert_rule(
        checkout,
        actor=actor,
        name="Too many errors",
        signal="error_ratio",
        track="stable",
        comparison=">",
        threshold=0.2,
        window_seconds=3,
        for_seconds=1,
        severity="critical",
    )
    # healthy traffic: nothing happens
    _traffic_and_scrape(fleet, checkout)
    assert services.evaluate_rule(rule.pk) == "unchanged"
    # the service starts failing half of its requests
    fleet.set_behaviour("checkout", "stable", error_rate=0.6)
    _traffic_and_scrape(fleet, checkout, n=4, per=25)
    assert services.evaluate_rule(rule.pk) == "pending"
    time.sleep(1.0)
    _traffic_and_scrape(fleet, checkout, n=1, per=25)
    assert services.evaluate_rule(rule.pk) == "firing"
    alert = Alert.objects.get(rule=rule)
    assert alert.state == "firing" and alert.value > 0.2

    req = signed.wait(1)[0]
    body = req["body"]
    assert req["headers"]["X-Backline-Event"] == "alert.firing"
    assert outbound.verify_signature(body, req["headers"]["X-Backline-Signature"], SECRET)
    assert not outbound.verify_signature(
        body, req["headers"]["X-Backline-Signature"], "wrong-secret"
    )
    payload = json.loads(body)
    assert payload["alert"]["state"] == "firing"
    assert payload["service"]["slug"] == "checkout" and payload["squad"] == "playback"
    # the Slack-compatible endpoint failed once (503) and got the retry
    chat = flaky.wait(2)
    assert "FIRING" in json.loads(chat[1]["body"])["text"]

    # the service recovers: once the window holds only healthy traffic, the alert resolves
    fleet.set_behaviour("checkout", "stable", error_rate=0.0)
    deadline = time.monotonic() + 15
    outcome = None
    while time.monotonic() < deadline and outcome != "resolved":
        _traffic_and_scrape(fleet, checkout, n=1, per=20)
        outcome = services.evaluate_rule(rule.pk)
    assert outcome == "resolved"
    alert.refresh_from_db()
    assert alert.state == "resolved" and alert.resolved_at > alert.fired_at
    assert [e.to_state for e in alert.events.all()] == ["pending", "firing", "resolved"]
    resolved = signed.wait(2)[1]
    assert json.loads(resolved["body"])["event"] == "alert.resolved"
    assert outbound.verify_signature(
        resolved["body"], resolved["headers"]["X-Backline-Signature"], SECRET
    )

    # the delivery log shows every attempt
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        statuses = set(Delivery.objects.values_list("outbound__status", flat=True))
        if statuses == {"delivered"}:
            break
        time.sleep(0.2)
    assert statuses == {"delivered"}
    chat_firing = Delivery.objects.get(channel__kind="slack", event="firing")
    assert chat_firing.attempts == 2 and chat_firing.response_code == 200


def test_no_data_never_fires(checkout, fleet):
    rule = AlertRule.objects.create(
        service=checkout, name="Slow", signal="p99", comparison=">", threshold=0.0
    )
    scrape_service(checkout)  # reachable, but no request was ever served
    assert services.evaluate_rule(rule.pk) == "unchanged"
    rule.refresh_from_db()
    assert rule.last_value is None and rule.last_evaluated_at is not None
    assert not Alert.objects.exists()


def test_rule_api_permissions_and_validation(checkout, alice, bob, make_token, squad, other_squad):
    body = {
        "service": "checkout",
        "name": "High p95",
        "signal": "p95",
        "comparison": ">",
        "threshold": 0.5,
        "for_seconds": 60,
        "severity": "warning",
    }
    # a token without the scope, and a member of another squad, are refused
    r = token_client(make_token(squad, ["pipelines:run"])).post(
        "/api/v1/alert-rules/", body, format="json"
    )
    assert r.status_code == 403 and "alerts:write" in r.json()["message"]
    r = client_for(bob).post("/api/v1/alert-rules/", body, format="json")
    assert r.status_code == 403
    r = token_client(make_token(other_squad, ["alerts:write"])).post(
        "/api/v1/alert-rules/", body, format="json"
    )
    assert r.status_code == 403
    # bad input: clear 400s
    r = client_for(alice).post("/api/v1/alert-rules/", {**body, "signal": ""}, format="json")
    assert r.status_code == 400 and "signal" in r.json()["errors"]
    r = client_for(alice).post("/api/v1/alert-rules/", {**body, "signal": "p42"}, format="json")
    assert r.status_code == 400 and "signal" in r.json()["message"]
    r = client_for(alice).post(
        "/api/v1/alert-rules/",
        {**body, "signal": "", "query": "quantile_over_time(0.5, x[5m])"},
        format="json",
    )
    assert r.status_code == 400
    assert "does not support the quantile_over_time() function" in r.json()["message"]
    # not PromQL (`by` takes a parenthesised list): refused, naming the construct, not saved
    bad = "histogram_quantile(0.9, sum by le (rate(http_request_duration_seconds_bucket[5m])))"
    r = client_for(alice).post(
        "/api/v1/alert-rules/", {**body, "signal": "", "query": bad}, format="json"
    )
    assert r.status_code == 400 and "`by` needs a parenthesised label list" in r.json()["message"]
    assert not AlertRule.objects.filter(query=bad).exists()
    good = "histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))"
    r = client_for(alice).post(
        "/api/v1/alert-rules/", {**body, "signal": "", "query": good}, format="json"
    )
    assert r.status_code == 201, r.content
    AlertRule.objects.filter(query=good).delete()  # the rest of this test counts rules
    r = client_for(alice).post(
        "/api/v1/alert-rules/",
        {**body, "signal": "", "query": 'sum(rate(http_requests_total{service="checkout"}[1m]))'},
        format="json",
    )
    assert r.status_code == 201, r.content
    r = client_for(alice).post("/api/v1/alert-rules/", {**body, "comparison": "=="}, format="json")
    assert r.status_code == 400 and "comparison" in r.json()["message"]
    # the owning squad's token with the scope may
    bot = token_client(make_token(squad, ["alerts:write"]))
    r = bot.post("/api/v1/alert-rules", body, format="json")
    assert r.status_code == 201, r.content
    rule_id = r.json()["id"]
    assert r.json()["expression"] == "p95{track=stable} > 0.5"
    assert AuditEvent.objects.filter(action="alert_rule.create", door="api").count() == 1
    r = bot.patch(f"/api/v1/alert-rules/{rule_id}/", {"threshold": 0.8}, format="json")
    assert r.status_code == 200 and r.json()["threshold"] == 0.8
    r = client_for(bob).delete(f"/api/v1/alert-rules/{rule_id}/")
    assert r.status_code == 403
    assert bot.get("/api/v1/alert-rules/?service=checkout").json()["count"] == 2
    assert bot.delete(f"/api/v1/alert-rules/{rule_id}").status_code == 204
    assert set(AuditEvent.objects.values_list("action", flat=True)) == {
        "alert_rule.create",
        "alert_rule.update",
        "alert_rule.delete",
    }


def test_alerts_api_and_pages(checkout, alice, charlie):
    rule = AlertRule.objects.create(
        service=checkout, name="Errors", signal="error_ratio", comparison=">", threshold=0.1
    )
    Alert.objects.create(
        rule=rule, service=checkout, severity="warning", state="firing", summary="x"
    )
    r = client_for(charlie).get("/api/v1/alerts/?state=firing")
    assert r.status_code == 200 and r.json()["count"] == 1
    assert r.json()["results"][0]["service"] == "checkout"
    page = client_for(charlie).get("/alerts/")
    assert page.status_code == 200 and "Errors" in page.content.decode()
    assert (
        client_for(alice)
        .get("/alerts/?state=firing&fragment=results", HTTP_HX_REQUEST="true")
        .status_code
        == 200
    )
    assert client_for(alice).get("/").status_code == 200


def test_channel_api_takes_every_field_it_documents(alice, squad):
    """`enabled` is in the channel schema: a create that sends it is a 201, not a 500 (found by
    schemathesis), and the service stores what was sent."""
    c = client_for(alice)
    body = {"squad": "playback", "name": "pager", "kind": "webhook", "url": "http://127.0.0.1:9/a"}
    on = c.post("/api/v1/alert-channels/", body, format="json")
    assert on.status_code == 201, on.content
    off = c.post("/api/v1/alert-channels/", {**body, "enabled": False}, format="json")
    assert off.status_code == 201, off.content
    assert [ch.enabled for ch in NotificationChannel.objects.order_by("id")] == [True, False]
