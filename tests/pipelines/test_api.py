"""The runs API and the pages: permissions, validation, filters, log offsets, audit."""

import pytest
from django.utils import timezone

from pipelines import services
from pipelines.models import LogChunk, PipelineRun, PipelineSecret, StepRun
from portal.actors import Actor
from portal.models import AuditEvent
from tests.conftest import client_for, token_client
from tests.factories import ServiceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def bot(make_token, squad):
    return token_client(make_token(squad, ["pipelines:run"]))


def make_run(service, status="succeeded", ref="main", log=("hello\n", "world\n")):
    run, _ = services.trigger_run(service, actor=Actor.system("t"), ref=ref)
    offset = 0
    for text in log:
        LogChunk.objects.create(run=run, offset=offset, size=len(text.encode()), text=text)
        offset += len(text.encode())
    now = timezone.now()
    PipelineRun.objects.filter(pk=run.pk).update(
        status=status,
        log_size=offset,
        started_at=now,
        finished_at=None if status in ("queued", "running") else now,
    )
    StepRun.objects.create(
        run=run, stage="build", name="compile", index=0, status=status, started_at=now
    )
    run.refresh_from_db()
    return run


def test_trigger_needs_the_scope_and_the_owning_squad(
    api, service, make_token, squad, other_squad, bob, charlie
):
    url = f"/api/v1/services/{service.slug}/runs"
    assert api.post(url, {"ref": "main"}).status_code == 401
    assert (
        token_client(make_token(squad, ["catalog:write"])).post(url, {"ref": "main"}).status_code
        == 403
    )
    resp = token_client(make_token(other_squad, ["pipelines:run"])).post(url, {"ref": "main"})
    assert resp.status_code == 403 and "owning squad" in resp.json()["message"]
    assert client_for(bob).post(url, {"ref": "main"}).status_code == 403
    assert client_for(charlie).post(url, {"ref": "main"}).status_code == 403
    assert not PipelineRun.objects.exists()


def test_trigger_with_idempotency_key(bot, service):
    url = f"/api/v1/services/{service.slug}/runs"
    first = bot.post(url, {"ref": "main"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    again = bot.post(url, {"ref": "main"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == 201 and again.status_code in (200, 201)
    assert PipelineRun.objects.count() == 1
    assert first.json()["id"] == again.json()["id"]
    body = first.json()
    assert body["status"] == "queued" and body["ref"] == "main" and body["number"] == 1
    assert body["service"] == "player" and body["squad"] == "playback" and body["trigger"] == "api"
    event = AuditEvent.objects.get(action="pipeline.trigger")
    assert event.door == "api" and event.actor.startswith("token:")


@pytest.mark.parametrize(
    "body,field",
    [
        ({"ref": "--upload-pack=evil"}, "ref"),
        ({"ref": "a..b"}, "ref"),
        ({"ref": "main", "commit": "xyz"}, "commit"),
    ],
)
def test_trigger_rejects_bad_input_with_400(bot, service, body, field):
    resp = bot.post(f"/api/v1/services/{service.slug}/runs", body, format="json")
    assert resp.status_code == 400
    assert field in resp.json()["errors"]
    assert not PipelineRun.objects.exists()


def test_trigger_unknown_service_is_404(bot):
    assert bot.post("/api/v1/services/nope/runs", {"ref": "main"}).status_code == 404


def test_list_filters_and_detail(bot, service, squad, other_squad):
    other = ServiceFactory(slug="search-api", owner=other_squad)
    a = make_run(service, "succeeded", "main")
    b = make_run(service, "failed", "feature/x")
    c = make_run(other, "failed", "main")
    ids = lambda resp: sorted(r["id"] for r in resp.json()["results"])  # noqa: E731
    assert ids(bot.get("/api/v1/runs/")) == sorted([a.pk, b.pk, c.pk])
    assert ids(bot.get("/api/v1/runs/?service=player")) == sorted([a.pk, b.pk])
    assert ids(bot.get("/api/v1/runs/?service=player&status=failed")) == [b.pk]
    assert ids(bot.get("/api/v1/runs/?squad=search")) == [c.pk]
    assert ids(bot.get("/api/v1/runs/?branch=main")) == sorted([a.pk, c.pk])
    assert bot.get("/api/v1/runs/?status=bogus").status_code == 400
    detail = bot.get(f"/api/v1/runs/{b.pk}/").json()
    assert detail["status"] == "failed" and detail["steps"][0]["name"] == "compile"
    assert ids(bot.get("/api/v1/services/player/runs")) == sorted([a.pk, b.pk])
    assert bot.get("/api/v1/runs/999999/").status_code == 404


def test_log_with_offset(bot, service):
    run = make_run(service, "running", log=("héllo\n", "world\n"))
    full = bot.get(f"/api/v1/runs/{run.pk}/log").json()
    assert full["text"] == "héllo\nworld\n" and full["complete"] is False
    assert full["next_offset"] == len("héllo\nworld\n".encode())
    part = bot.get(f"/api/v1/runs/{run.pk}/log?offset=7").json()
    assert part["text"] == "world\n"
    mid = bot.get(f"/api/v1/runs/{run.pk}/log?offset=9").json()
    assert mid["text"] == "rld\n"
    end = bot.get(f"/api/v1/runs/{run.pk}/log?offset={full['next_offset']}").json()
    assert end["text"] == "" and end["next_offset"] == full["next_offset"]
    bad = bot.get(f"/api/v1/runs/{run.pk}/log?offset=-1")
    assert bad.status_code == 400 and "offset" in bad.json()["errors"]
    PipelineRun.objects.filter(pk=run.pk).update(status="succeeded")
    assert bot.get(f"/api/v1/runs/{run.pk}/log").json()["complete"] is True


def test_cancel_and_rerun_transitions(bot, service):
    queued, _ = services.trigger_run(service, actor=Actor.system("t"), ref="main")
    resp = bot.post(f"/api/v1/runs/{queued.pk}/cancel")
    assert resp.status_code == 202 and resp.json()["status"] == "canceled"
    again = bot.post(f"/api/v1/runs/{queued.pk}/cancel")
    assert again.status_code == 409 and again.json()["current"]["status"] == "canceled"
    running = make_run(service, "running")
    resp = bot.post(f"/api/v1/runs/{running.pk}/rerun")
    assert resp.status_code == 409 and "still running" in resp.json()["message"]
    resp = bot.post(f"/api/v1/runs/{running.pk}/cancel")
    assert resp.status_code == 202 and resp.json()["cancel_requested"] is True
    resp = bot.post(f"/api/v1/runs/{queued.pk}/rerun")
    assert resp.status_code == 201
    new = PipelineRun.objects.get(pk=resp.json()["id"])
    assert new.rerun_of_id == queued.pk and new.trigger == "rerun" and new.status == "queued"
    assert AuditEvent.objects.filter(action="pipeline.cancel").count() == 2
    assert AuditEvent.objects.filter(action="pipeline.rerun", target_id=str(new.pk)).count() == 1


def test_cancel_needs_permission(make_token, other_squad, service):
    run, _ = services.trigger_run(service, actor=Actor.system("t"), ref="main")
    other = token_client(make_token(other_squad, ["pipelines:run"]))
    assert other.post(f"/api/v1/runs/{run.pk}/cancel").status_code == 403
    assert other.post(f"/api/v1/runs/{run.pk}/rerun").status_code == 403


def test_secrets_are_write_only(bot, service, make_token, other_squad):
    url = f"/api/v1/services/{service.slug}/pipeline-secrets"
    resp = bot.post(url, {"name": "NPM_TOKEN", "value": "npm_abcdef123456"}, format="json")
    assert resp.status_code == 201 and "value" not in resp.json()
    listing = bot.get(url)
    assert (
        listing.json()[0]["name"] == "NPM_TOKEN"
        and "npm_abcdef123456" not in listing.content.decode()
    )
    assert PipelineSecret.objects.get().value == "npm_abcdef123456"
    bad = bot.post(url, {"name": "1bad name", "value": "x"}, format="json")
    assert bad.status_code == 400 and "name" in bad.json()["errors"]
    other = token_client(make_token(other_squad, ["pipelines:run"]))
    assert other.post(url, {"name": "X", "value": "y"}, format="json").status_code == 403
    assert bot.delete(f"{url}/NPM_TOKEN").status_code == 204
    assert bot.delete(f"{url}/NPM_TOKEN").status_code == 404
    events = AuditEvent.objects.filter(action__startswith="pipeline.secret")
    assert events.count() == 2 and all("npm_abcdef" not in str(e.data) for e in events)


def test_spec_api_rejects_invalid_spec_with_line(bot, service):
    url = f"/api/v1/services/{service.slug}/pipeline-spec"
    resp = bot.put(
        url, {"spec": "stages:\n  - name: b\n    steps:\n      - name: c\n"}, format="json"
    )
    assert resp.status_code == 400
    assert "line 4" in resp.json()["message"] and "stages[0].steps[0].run" in resp.json()["message"]
    ok = bot.put(
        url,
        {"spec": 'stages: [{name: build, steps: [{name: compile, run: "make"}]}]'},
        format="json",
    )
    assert ok.status_code == 200
    assert "make" in bot.get(url).json()["spec"]


def test_last_runs_in_one_query(service, squad, django_assert_num_queries):
    from pipelines.catalog import last_runs

    other = ServiceFactory(slug="other", owner=squad)
    make_run(service, "failed")
    latest = make_run(service, "succeeded")
    with django_assert_num_queries(1):
        result = last_runs([service.pk, other.pk])
    assert latest.status == "succeeded"
    assert result == {service.pk: "succeeded"}  # the latest run's; none for a service without


def test_scorecard_rules(service, squad):
    from squads.scorecards import evaluate_one

    def rules():
        return {r.rule.key: r.passed for r in evaluate_one(service).results}

    assert rules()["has_pipeline"] is False and rules()["default_branch_green"] is False
    run = make_run(service, "succeeded", "main")
    PipelineRun.objects.filter(pk=run.pk).update(spec={"stages": []})
    make_run(service, "failed", "feature/x")  # other branches do not count
    assert rules()["has_pipeline"] is True and rules()["default_branch_green"] is True
    make_run(service, "failed", "main")
    assert rules()["default_branch_green"] is False


def test_openapi_schema_lists_the_pipeline_endpoints(bot):
    resp = bot.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert resp.status_code == 200
    paths = resp.json()["paths"] if resp["Content-Type"].startswith("application/json") else {}
    if not paths:
        import yaml

        paths = yaml.safe_load(resp.content)["paths"]
    for path in ("/api/v1/runs/", "/api/v1/runs/{id}/log/", "/api/v1/services/{slug}/runs"):
        assert any(p.rstrip("/") == path.rstrip("/") for p in paths), path
