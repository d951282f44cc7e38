import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from portal import events, outbound
from portal.models import ApiToken, AuditEvent, EventDelivery
from squads.models import Service
from tests.conftest import client_for, token_client
from tests.factories import ServiceFactory


class Receiver:
    """A local HTTP receiver speaking plain HTTP; answers with the codes it is told to."""

    def __init__(self, codes=()):
        self.codes = list(codes)
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((dict(self.headers), body))
                code = outer.codes.pop(0) if outer.codes else 200
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_subscription_api_and_signed_delivery_with_retry_after_500(alice, squad, receiver):
    receiver.codes = [500]
    c = client_for(alice)
    resp = c.post(
        "/api/v1/event-subscriptions/",
        {
            "squad": "playback",
            "name": "bot",
            "url": receiver.url,
            "secret": "topsecret1",
            "event_types": ["catalog.*"],
        },
        format="json",
    )
    assert resp.status_code == 201, resp.content
    assert "secret" not in resp.json()
    bad = c.post(
        "/api/v1/event-subscriptions/",
        {
            "squad": "playback",
            "name": "x",
            "url": receiver.url,
            "secret": "topsecret1",
            "event_types": ["bogus.*"],
        },
        format="json",
    )
    assert bad.status_code == 400 and "event_types" in bad.json()["errors"]

    [delivery] = events.emit("catalog.service.updated", squad, {"service": "playback-api"})
    assert events.emit("pipeline.run.succeeded", squad, {}) == []  # not subscribed
    d = events.attempt(delivery.pk)
    assert d.status == "retrying" and d.last_status_code == 500 and d.next_attempt_at is not None
    d = events.attempt(delivery.pk)
    assert d.status == "delivered" and d.attempts == 2
    assert len(receiver.requests) == 2
    for headers, body in receiver.requests:
        assert headers["X-Backline-Delivery"] == str(delivery.delivery_id)
        assert outbound.verify_signature(body, headers["X-Backline-Signature"], "topsecret1")
        assert not outbound.verify_signature(body, headers["X-Backline-Signature"], "wrong-secret")
        assert json.loads(body)["type"] == "catalog.service.updated"
    log = c.get(f"/api/v1/event-deliveries/{delivery.pk}/").json()
    assert [a["status_code"] for a in log["attempt_log"]] == [500, 200]

    resp = c.post(f"/api/v1/event-deliveries/{delivery.pk}/redeliver")
    assert resp.status_code == 201
    assert resp.json()["delivery_id"] != str(delivery.delivery_id)
    assert AuditEvent.objects.filter(action="event.redeliver").count() == 1


def test_unreachable_receiver_fails_after_max_attempts(alice, squad):
    from portal.models import EventSubscription

    sub = EventSubscription.objects.create(
        squad=squad, name="dead", url="http://127.0.0.1:9/none", secret="x" * 10, event_types=["*"]
    )
    [d] = events.emit("alert.firing", squad, {})
    for _ in range(events.MAX_ATTEMPTS):
        d = events.attempt(d.pk)
    assert d.status == "failed" and d.attempts == events.MAX_ATTEMPTS
    assert "could not connect" in d.last_error and "Connection refused" in d.last_error
    assert events.attempt(d.pk) is None  # a failed delivery is not attempted again
    assert sub.deliveries.count() == 1


@pytest.mark.worker
def test_real_worker_delivers_after_commit_and_retries(celery_worker_proc, squad, receiver):
    from django.db import transaction

    from portal.models import EventSubscription

    receiver.codes = [503]
    EventSubscription.objects.create(
        squad=squad, name="bot", url=receiver.url, secret="s" * 12, event_types=["release.*"]
    )
    with transaction.atomic():
        [d] = events.emit("release.promoted", squad, {"release": 1})
        time.sleep(0.5)
        assert receiver.requests == []  # nothing leaves before the action commits
    deadline = time.time() + 30
    while time.time() < deadline and EventDelivery.objects.get(pk=d.pk).status != "delivered":
        time.sleep(0.2)
    d.refresh_from_db()
    assert d.status == "delivered" and d.attempts == 2
    assert len(receiver.requests) == 2


def test_idempotency_key_replays_first_answer(alice, squad):
    c = client_for(alice)
    body = {"slug": "idem-svc", "name": "Idem", "owner": "playback"}
    r1 = c.post("/api/v1/services/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    r2 = c.post("/api/v1/services/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert r1.status_code == r2.status_code == 201
    assert r1.json() == r2.json()
    assert r2["Idempotent-Replayed"] == "true"
    assert Service.objects.filter(slug="idem-svc").count() == 1
    assert AuditEvent.objects.filter(action="service.create").count() == 1
    r3 = c.post("/api/v1/services/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    assert r3.status_code == 400  # a new key runs again: slug already exists


def test_token_rate_limit_answers_429_with_retry_after(squad, make_token):
    from django.core.cache import cache

    cache.clear()
    raw = make_token(squad, [])
    ApiToken.objects.update(rate_limit_per_minute=3)
    c = token_client(raw)
    codes = [c.get("/api/v1/me/").status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200]
    resp = c.get("/api/v1/me/")
    assert resp.status_code == 429
    assert 1 <= int(resp["Retry-After"]) <= 61
    assert resp.json()["code"] == "throttled"
    # the window's counter in Redis counts every request and expires with its window
    token = ApiToken.objects.get()
    mine = f"rl:{token.key_hash[:32]}:".encode()
    keys = [k for k in cache._cache.get_client().keys("*") if mine in k]
    assert len(keys) == 1, keys
    client = cache._cache.get_client()
    assert int(client.get(keys[0])) == 6 and 0 < client.ttl(keys[0]) <= 70


def test_service_serializer_never_returns_webhook_secret(alice, squad):
    ServiceFactory(slug="s1", owner=squad, webhook_secret="very-secret-value")
    c = client_for(alice)
    for path in ["/api/v1/services/", "/api/v1/services/s1/"]:
        assert b"very-secret-value" not in c.get(path).content


def test_backstage_import_emits_catalog_imported_to_owning_squad(admin_user, squad):
    from portal.actors import Actor
    from portal.models import EventSubscription
    from squads.backstage import import_catalog

    EventSubscription.objects.create(
        squad=squad,
        name="bot",
        url="http://127.0.0.1:9/x",
        secret="s" * 10,
        event_types=["catalog.*"],
    )
    doc = """apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: lyrics-api, description: Lyrics}
spec: {type: service, lifecycle: production, owner: playback}
"""
    import_catalog([("lyrics.yaml", doc)], Actor(user=admin_user))
    [d] = EventDelivery.objects.all()
    assert d.event_type == "catalog.imported" and d.payload["data"]["services"] == ["lyrics-api"]
    import_catalog([("lyrics.yaml", doc)], Actor(user=admin_user))  # unchanged: no second event
    assert EventDelivery.objects.count() == 1


def test_idempotent_replay_is_refused_once_the_token_is_revoked(squad, make_token):
    from django.utils import timezone

    raw = make_token(squad, ["catalog:write"])
    c = token_client(raw)
    body = {"slug": "replay-svc", "name": "Replay", "owner": "playback"}
    assert (
        c.post("/api/v1/services/", body, format="json", HTTP_IDEMPOTENCY_KEY="r-1").status_code
        == 201
    )
    ApiToken.objects.update(revoked_at=timezone.now())
    again = c.post("/api/v1/services/", body, format="json", HTTP_IDEMPOTENCY_KEY="r-1")
    assert again.status_code == 401
    assert "revoked" in again.json()["message"]
