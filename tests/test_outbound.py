"""The one outbound delivery service: one signature that one verifier (and the README's
snippet) checks on a real event delivery, a real alert notification and a real webhook-driver
call, all captured by a local HTTP receiver; idempotent keys; the event-type registry."""

import ast
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from monitoring.models import Alert, AlertRule, Delivery, NotificationChannel
from portal import events, outbound
from portal.actors import Actor
from portal.models import EventDelivery, EventSubscription
from releases import services as releases
from releases.models import Environment
from tests.conftest import client_for
from tests.factories import ServiceFactory
from tests.releases.conftest import settle

ROOT = Path(__file__).resolve().parent.parent
SECRETS = {"event": "event-secret-1", "alert": "alert-secret-1", "deploy": "deploy-secret-1"}


class Capture:
    """A threaded HTTP receiver on 127.0.0.1 keeping every request (path, headers, raw body)."""

    def __init__(self):
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.requests.append((self.path, dict(self.headers), body))
                raw = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def one(self, path):
        found = [r for r in self.requests if r[0] == path]
        assert len(found) == 1, (path, [r[0] for r in self.requests])
        return found[0]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def capture():
    c = Capture()
    yield c
    c.close()


def readme_verifier():
    """The README's verification snippet, executed as written."""
    text = (ROOT / "README.md").read_text()
    after = text.split("<!-- verify-snippet", 1)[1]
    code = re.search(r"```python\n(.*?)```", after, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    return namespace["verify"]


def _alert_for(service):
    rule = AlertRule.objects.create(
        service=service, name="Errors", signal="error_ratio", threshold=0.1
    )
    return Alert.objects.create(
        rule=rule, service=service, state="firing", severity="warning", summary="errors 50 %"
    )


def test_one_verifier_for_events_alerts_and_the_deploy_driver(squad, alice, capture):
    from monitoring import services as monitoring

    service = ServiceFactory(slug="playback-api", owner=squad)
    # an event delivery to a subscription
    EventSubscription.objects.create(
        squad=squad,
        name="bot",
        url=capture.base + "/event",
        secret=SECRETS["event"],
        event_types=["catalog.*"],
    )
    [event] = events.emit("catalog.service.updated", squad, {"service": service.slug})
    assert outbound.attempt(event.pk).status == "delivered"
    # an alert notification to a generic webhook channel
    NotificationChannel.objects.create(
        squad=squad,
        name="ops",
        kind="webhook",
        url=capture.base + "/alert",
        secret=SECRETS["alert"],
    )
    [note] = monitoring._notify(_alert_for(service), "firing")
    assert outbound.attempt(note.outbound_id).status == "delivered"
    assert Delivery.objects.get(pk=note.pk).status == "delivered"
    # a webhook deploy-driver call, as the worker makes it after the release's commit
    env = Environment.objects.create(
        name="hooked-capture",
        driver="webhook",
        driver_config={"url": capture.base + "/deploy", "secret": SECRETS["deploy"]},
    )
    r = releases.create_release(
        service,
        actor=Actor(user=alice),
        environment=env,
        version="1.0.0",
        steps=[{"set_weight": 10}, {"pause": {}}],
    )
    assert r.applying and r.weight == 0
    r = settle(r)
    assert r.status == "paused" and r.weight == 10 and not r.applying

    readme_verify = readme_verifier()
    for kind, path, event_type in [
        ("event", "/event", "catalog.service.updated"),
        ("alert", "/alert", "alert.firing"),
        ("deploy", "/deploy", "deploy.set_weight"),
    ]:
        _, headers, body = capture.one(path)
        header = headers["X-Backline-Signature"]
        assert headers["X-Backline-Event"] == event_type
        assert EventDelivery.objects.get(delivery_id=headers["X-Backline-Delivery"]).kind == kind
        assert outbound.verify_signature(body, header, SECRETS[kind]), kind
        assert readme_verify(body, header, SECRETS[kind]), kind
        assert not outbound.verify_signature(body, header, "wrong-secret")
        assert not readme_verify(body, header, "wrong-secret")
        assert not outbound.verify_signature(body + b" ", header, SECRETS[kind])  # tampered
        assert not readme_verify(body.replace(b"1", b"2"), header, SECRETS[kind])
        # the same signature scheme made 10 minutes ago is refused by the max-age check
        old = outbound.sign(SECRETS[kind], body, timestamp=int(time.time()) - 600)
        assert not outbound.verify_signature(body, old, SECRETS[kind])
        assert not readme_verify(body, old, SECRETS[kind])
        assert outbound.verify_signature(body, old, SECRETS[kind], max_age=None)
    deploy = json.loads(capture.one("/deploy")[2])
    assert deploy["action"] == "set_weight" and deploy["weight"] == 10 and deploy["call"]


def test_same_key_is_one_delivery_and_one_request(db, capture):
    first = outbound.deliver(
        "event", capture.base + "/k", {"n": 1}, event_type="catalog.imported", key="k-1"
    )
    assert outbound.attempt(first.pk).status == "delivered"
    again = outbound.deliver(
        "event", capture.base + "/k", {"n": 1}, event_type="catalog.imported", key="k-1"
    )
    assert again.pk == first.pk and outbound.attempt(again.pk) is None
    assert len(capture.requests) == 1


# --- the event-type registry --------------------------------------------------------------------
# Types emitted only under a name built at run time (none today: run transitions name their
# events in RUN_EVENTS). Once a name here is emitted literally, the test asks to remove it.
EMITTED_ELSEWHERE: set[str] = set()
APPS = ("portal", "squads", "metrics", "pipelines", "infra", "monitoring", "releases")


def _source_literals():
    """String literals of the apps' code (not migrations, not the registrations in apps.py),
    and the literal first arguments of ``emit(...)`` calls."""
    literals, emitted = set(), set()
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts or path.name == "apps.py":
                continue
            tree = ast.parse(path.read_text())
            audit_actions = set()  # audit.record(actor, "infra.run.errored", ...) is no event
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                name = getattr(node.func, "attr", getattr(node.func, "id", ""))
                if name == "record" and len(node.args) > 1:
                    audit_actions.add(id(node.args[1]))
                if name == "emit" and node.args and isinstance(node.args[0], ast.Constant):
                    emitted.add(node.args[0].value)
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    if id(node) not in audit_actions:
                        literals.add(node.value)
    return literals, emitted


def test_registered_types_are_emitted_and_emitted_types_registered(db, squad):
    registered = set(events.event_types())
    assert {"release.promoted", "alert.firing", "infra.drift_detected"} <= registered
    assert EMITTED_ELSEWHERE <= registered  # the other branch's emits are accepted
    literals, emitted = _source_literals()
    never = sorted(registered - literals - EMITTED_ELSEWHERE)
    assert never == [], f"registered but never emitted: {never}"
    done = sorted(EMITTED_ELSEWHERE & literals)
    assert done == [], f"emitted now: take {done} out of EMITTED_ELSEWHERE"
    unregistered = sorted(emitted - registered)
    assert unregistered == [], f"emitted but not registered: {unregistered}"
    with pytest.raises(events.UnknownEventType):
        events.emit("pipeline.exploded", squad, {})


def test_subscriptions_offer_exactly_the_registered_types(alice, squad):
    c = client_for(alice)
    listed = c.get("/api/v1/event-types/").json()
    assert [t["name"] for t in listed] == sorted(events.event_types())
    assert all(t["description"] for t in listed)

    def subscribe(types):
        body = {
            "squad": "playback",
            "name": f"s{len(types)}{types[0][:3]}",
            "url": "https://bot.example.com/hook",
            "secret": "s" * 10,
            "event_types": types,
        }
        return c.post("/api/v1/event-subscriptions/", body, format="json")

    assert subscribe(["infra.*", "infra.drift_detected"]).status_code == 201
    assert subscribe(["alert.firing", "pipeline.run.*"]).status_code == 201
    for bad in (["terraform.*"], ["release.exploded"], ["bogus"]):
        resp = subscribe(bad)
        assert resp.status_code == 400 and bad[0] in resp.json()["errors"]["event_types"][0]
    page = c.get("/events/").content.decode()
    for family in events.families():
        assert f'value="{family}.*"' in page
    for name in events.event_types():
        assert f'value="{name}"' in page
