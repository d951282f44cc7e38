import time

import pytest
from django.core.management import call_command

from portal.models import ApiToken, AuditEvent
from tests.conftest import client_for, token_client


def test_anonymous_api_gets_401_not_data(api, db):
    resp = api.get("/api/v1/me/")
    assert resp.status_code == 401
    assert resp.json()["code"] == "not_authenticated"
    assert resp["WWW-Authenticate"].startswith("Bearer")


def test_bearer_token_authenticates_and_expired_token_is_refused(make_token, squad):
    from datetime import timedelta

    from django.utils import timezone

    raw = make_token(squad, ["catalog:write"])
    resp = token_client(raw).get("/api/v1/me/")
    assert resp.status_code == 200
    assert resp.json()["squads"] == ["playback"]
    assert resp.json()["scopes"] == ["catalog:write"]
    expired = make_token(squad, [], expires_at=timezone.now() - timedelta(minutes=1), name="old")
    resp = token_client(expired).get("/api/v1/me/")
    assert resp.status_code == 401
    assert "expired" in resp.json()["message"]


def test_tokens_are_stored_hashed(make_token, squad):
    raw = make_token(squad, ["pipelines:run"])
    token = ApiToken.objects.get()
    assert raw not in (token.key_hash, token.key_prefix)
    assert len(token.key_hash) == 64


def test_create_token_command_prints_token_on_last_line(squad, capsys):
    call_command(
        "create_token",
        "--squad",
        "playback",
        "--scopes",
        "catalog:write",
        "pipelines:run",
        "--name",
        "ci",
    )
    out = capsys.readouterr().out.strip().splitlines()
    raw = out[-1]
    assert raw.startswith("bl_")
    resp = token_client(raw).get("/api/v1/me/")
    assert resp.status_code == 200
    assert AuditEvent.objects.filter(action="token.create", door="command").count() == 1


def test_revoked_token_refused_and_revocation_audited(alice, squad):
    c = client_for(alice)
    resp = c.post(
        "/api/v1/tokens/",
        {"name": "bot", "squad": "playback", "scopes": ["catalog:write"]},
        format="json",
    )
    assert resp.status_code == 201, resp.content
    raw = resp.json()["token"]
    assert token_client(raw).get("/api/v1/me/").status_code == 200
    resp = c.post(f"/api/v1/tokens/{resp.json()['id']}/revoke")
    assert resp.status_code == 200
    assert token_client(raw).get("/api/v1/me/").status_code == 401
    assert list(AuditEvent.objects.values_list("action", flat=True).order_by("id")) == [
        "token.create",
        "token.revoke",
    ]


def test_non_member_cannot_mint_token_for_another_squad(bob, squad):
    resp = client_for(bob).post(
        "/api/v1/tokens/", {"name": "x", "squad": "playback", "scopes": []}, format="json"
    )
    assert resp.status_code == 403
    assert ApiToken.objects.count() == 0


def test_metrics_endpoint_serves_prometheus_text(client, db):
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert b"backline_http_request_duration_seconds" in resp.content


@pytest.mark.worker
def test_real_celery_worker_runs_a_task(celery_worker_proc):
    from portal.tasks import record_heartbeat

    record_heartbeat.delay("from test")
    deadline = time.time() + 20
    while time.time() < deadline:
        if AuditEvent.objects.filter(action="worker.heartbeat", data__note="from test").exists():
            break
        time.sleep(0.2)
    event = AuditEvent.objects.get(action="worker.heartbeat")
    assert event.door == "worker"
