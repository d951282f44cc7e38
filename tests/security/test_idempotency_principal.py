"""Idempotency records belong to who authenticated, and never hold a secret (issue 14, item 5).

Before: the record was keyed on the raw ``Authorization`` header, so two callers sending one
shared non-Bearer header replayed each other's answers (one received the other's new token),
and the new token's value sat in clear in the idempotency table for 24 h."""

import pytest

from portal.models import ApiToken, IdempotencyRecord
from tests.conftest import client_for, token_client

pytestmark = pytest.mark.django_db

SHARED_HEADER = "Basic c2hhcmVkOnByb3h5"  # e.g. a proxy's header every caller sends


def _create_token(client, key, name="ci"):
    return client.post(
        "/api/v1/tokens/",
        {"squad": "playback", "name": name, "scopes": ["pipelines:run"]},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
        HTTP_AUTHORIZATION=SHARED_HEADER,
    )


def test_two_people_behind_one_shared_header_never_get_each_others_answer(alice, admin_user, squad):
    first = _create_token(client_for(alice), "same-key", name="alices")
    second = _create_token(client_for(admin_user), "same-key", name="admins")
    assert first.status_code == 201 and second.status_code == 201, second.content
    assert second.get("Idempotent-Replayed") is None
    assert first.json()["token"] != second.json()["token"]
    assert second.json()["name"] == "admins"
    principals = set(IdempotencyRecord.objects.values_list("principal", flat=True))
    assert principals == {f"u:{alice.pk}", f"u:{admin_user.pk}"}


def test_a_replayed_token_creation_says_already_created_without_the_value(alice, squad):
    c = client_for(alice)
    first = _create_token(c, "once")
    raw = first.json()["token"]
    again = _create_token(c, "once")
    assert again.status_code == 409 and again["Idempotent-Replayed"] == "true"
    body = again.json()
    assert body["code"] == "already_created" and body["state"]["id"] == first.json()["id"]
    assert raw not in again.content.decode()
    assert ApiToken.objects.filter(name="ci").count() == 1
    stored = IdempotencyRecord.objects.get(key="once")
    assert raw not in str(stored.response_body)


def test_a_token_is_its_own_principal(squad, make_token):
    raw = make_token(squad, ["catalog:write"])
    c = token_client(raw)
    body = {"slug": "idem-svc", "name": "Idem", "owner": "playback"}
    r1 = c.post("/api/v1/services/", body, format="json", HTTP_IDEMPOTENCY_KEY="t-1")
    r2 = c.post("/api/v1/services/", body, format="json", HTTP_IDEMPOTENCY_KEY="t-1")
    assert r1.status_code == 201 and r2.status_code == 201 and r2["Idempotent-Replayed"] == "true"
    token = ApiToken.objects.get(key_hash__isnull=False, name="bot")
    assert IdempotencyRecord.objects.get(key="t-1").principal == f"t:{token.pk}"
    # another token of the same squad with the same key: its own request, not a replay
    other = token_client(make_token(squad, ["catalog:write"], name="bot2"))
    r3 = other.post("/api/v1/services/", body, format="json", HTTP_IDEMPOTENCY_KEY="t-1")
    assert r3.status_code == 400 and r3.get("Idempotent-Replayed") is None  # slug taken


def test_nobody_authenticated_is_not_recorded(squad):
    from rest_framework.test import APIClient

    resp = APIClient().post(
        "/api/v1/services/",
        {"slug": "x", "name": "x", "owner": "playback"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="anon-1",
        HTTP_AUTHORIZATION=SHARED_HEADER,
    )
    assert resp.status_code == 401
    assert not IdempotencyRecord.objects.exists()


def test_migration_forgets_header_keyed_records_and_stored_token_values(alice):
    import importlib

    from django.apps import apps

    mig = importlib.import_module("portal.migrations.0005_h14sec_idempotency_principals")
    common = {"method": "POST", "path": "/api/v1/tokens/", "status_code": 201}
    IdempotencyRecord.objects.create(
        key="a", principal="t:" + "ab" * 16, response_body={"ok": 1}, **common
    )
    kept = IdempotencyRecord.objects.create(
        key="b", principal="t:7", response_body={"ok": 1}, **common
    )
    leaky = IdempotencyRecord.objects.create(
        key="c", principal=f"u:{alice.pk}", response_body={"id": 3, "token": "bl_x1y2z3"}, **common
    )
    mig.forget_header_keys_and_secrets(apps, None)
    assert set(IdempotencyRecord.objects.values_list("key", flat=True)) == {"b", "c"}
    leaky.refresh_from_db()
    assert leaky.status_code == 409 and "bl_x1y2z3" not in str(leaky.response_body)
    assert leaky.response_body["state"] == {"id": 3}
    kept.refresh_from_db()
    assert kept.response_body == {"ok": 1}
