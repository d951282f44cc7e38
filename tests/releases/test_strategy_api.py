"""Release strategies and analysis templates through the API: what admins could only do in
Django admin, bots can do too, with the same validation, permissions and audit."""

import pytest

from portal.actors import Actor
from portal.models import AuditEvent
from releases import services
from releases.models import AnalysisTemplate, Release, StrategyOverride
from tests.conftest import client_for, token_client

pytestmark = pytest.mark.django_db

A = "/api/v1"
STEPS = [{"set_weight": 20}, {"analysis": {"template": "golden-signals"}}, {"set_weight": 100}]


def test_owner_sets_the_strategy_the_next_release_uses(alice, playback_api, local_env):
    c = client_for(alice)
    resp = c.post(
        f"{A}/release-strategies/",
        {"service": "playback-api", "environment": "staging", "steps": STEPS},
        format="json",
    )
    assert resp.status_code == 201, resp.json()
    body = resp.json()
    assert body["steps"] == STEPS and body["environment"] == "staging"
    assert body["describe"][0] == "set weight 20 %" or "20" in body["describe"][0]
    event = AuditEvent.objects.get(action="release.strategy_created")
    assert event.door == "api" and event.data["steps"] == STEPS
    release = services.create_release(
        playback_api, actor=Actor(user=alice), environment="staging", version="v2"
    )
    assert release.strategy == STEPS and release.strategy_source == "service+environment"
    listed = c.get(f"{A}/release-strategies/?service=playback-api").json()["results"]
    assert [s["id"] for s in listed] == [body["id"]]

    changed = [{"set_weight": 50}, {"pause": {}}, {"set_weight": 100}]
    put = c.put(
        f"{A}/release-strategies/{body['id']}/",
        {"service": "playback-api", "environment": "staging", "steps": changed},
        format="json",
    )
    assert put.status_code == 200 and put.json()["steps"] == changed
    assert StrategyOverride.objects.get().steps == changed

    Release.objects.update(status="succeeded")  # one active release per service/environment
    assert c.delete(f"{A}/release-strategies/{body['id']}/").status_code == 204
    assert not StrategyOverride.objects.exists()
    assert services.create_release(
        playback_api, actor=Actor(user=alice), environment="staging", version="v3"
    ).strategy_source in (
        "environment",
        "default",
    )


def test_bad_steps_duplicates_and_moves_are_refused_with_the_field(alice, playback_api, local_env):
    c = client_for(alice)
    bad = c.post(
        f"{A}/release-strategies/",
        {"service": "playback-api", "steps": [{"set_weight": 20}, {"jump": 1}]},
        format="json",
    )
    assert bad.status_code == 400
    assert "step 2" in bad.json()["errors"]["steps"][0]
    assert not StrategyOverride.objects.exists()
    ok = c.post(
        f"{A}/release-strategies/", {"service": "playback-api", "steps": STEPS}, format="json"
    )
    assert ok.status_code == 201 and ok.json()["environment"] is None
    dup = c.post(
        f"{A}/release-strategies/", {"service": "playback-api", "steps": STEPS}, format="json"
    )
    assert dup.status_code == 409 and "already has a release strategy" in dup.json()["message"]
    moved = c.patch(
        f"{A}/release-strategies/{ok.json()['id']}/", {"environment": "staging"}, format="json"
    )
    assert moved.status_code == 400 and "environment" in moved.json()["errors"]
    assert StrategyOverride.objects.get().environment is None


def test_only_owners_admins_and_scoped_tokens_of_the_squad(
    alice, bob, charlie, admin_user, squad, other_squad, playback_api, make_token
):
    def post(client):
        return client.post(
            f"{A}/release-strategies/", {"service": "playback-api", "steps": STEPS}, format="json"
        )

    assert post(client_for(bob)).status_code == 403
    assert post(client_for(charlie)).status_code == 403
    assert post(token_client(make_token(other_squad, ["releases:promote"]))).status_code == 403
    no_scope = post(token_client(make_token(squad, ["catalog:write"])))
    assert no_scope.status_code == 403 and "releases:promote" in no_scope.json()["message"]
    assert not StrategyOverride.objects.exists()
    made = post(token_client(make_token(squad, ["releases:promote"])))
    assert made.status_code == 201
    sid = made.json()["id"]
    assert client_for(bob).delete(f"{A}/release-strategies/{sid}/").status_code == 403
    assert client_for(admin_user).delete(f"{A}/release-strategies/{sid}/").status_code == 204


def test_templates_are_for_admins_and_in_use_ones_cannot_go(alice, admin_user, playback_api):
    metrics = [{"name": "errors", "kind": "error_ratio", "max": 0.02}]
    body = {"name": "strict", "description": "2 % errors", "metrics": metrics}
    refused = client_for(alice).post(f"{A}/analysis-templates/", body, format="json")
    assert refused.status_code == 403 and "admins" in refused.json()["message"]
    admin = client_for(admin_user)
    bad = admin.post(
        f"{A}/analysis-templates/",
        {"name": "strict", "metrics": [{"name": "errors", "kind": "error_ratio"}]},
        format="json",
    )
    assert bad.status_code == 400 and "needs max" in bad.json()["errors"]["metrics"][0]
    assert admin.post(f"{A}/analysis-templates/", body, format="json").status_code == 201
    assert admin.post(f"{A}/analysis-templates/", body, format="json").status_code == 409
    patched = admin.patch(
        f"{A}/analysis-templates/strict/",
        {"metrics": [{"name": "errors", "kind": "error_ratio", "max": 0.01}]},
        format="json",
    )
    assert patched.status_code == 200
    assert AnalysisTemplate.objects.get(name="strict").metrics[0]["max"] == 0.01
    renamed = admin.patch(f"{A}/analysis-templates/strict/", {"name": "lax"}, format="json")
    assert renamed.status_code == 400 and "name" in renamed.json()["errors"]

    StrategyOverride.objects.create(
        service=playback_api, steps=[{"set_weight": 10}, {"analysis": {"template": "strict"}}]
    )
    in_use = admin.delete(f"{A}/analysis-templates/strict/")
    assert in_use.status_code == 409 and "playback-api" in in_use.json()["message"]
    StrategyOverride.objects.all().delete()
    assert admin.delete(f"{A}/analysis-templates/strict/").status_code == 204
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {
        "release.template_created",
        "release.template_changed",
        "release.template_deleted",
    } <= actions
