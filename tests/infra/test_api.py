"""REST API and HTML pages (no worker: runs are executed in-process where needed)."""

import pytest

from infra import runner
from infra.models import RunStatus, TerraformRun, Variable, Workspace
from portal.models import AuditEvent
from tests.conftest import client_for, token_client
from tests.factories import ServiceFactory
from tests.infra.conftest import CONFIG, SECRET, log_text

pytestmark = pytest.mark.django_db


def create(client, squad, upstream, slug="edge", **extra):
    body = {"slug": slug, "name": "Edge", "owner": squad.slug, "files": {"main.tf": CONFIG}}
    body.update(extra)
    return client.post("/api/v1/workspaces/", body, format="json")


def test_create_list_get_and_variables(ws_root, alice, squad, upstream, tf_bin, admin_user):
    svc = ServiceFactory(slug="cdn", owner=squad)
    c = client_for(alice)
    r = create(c, squad, upstream, services=["cdn"])
    assert r.status_code == 201, r.json()
    assert r.json()["services"] == ["cdn"] and r.json()["lock"] is None
    assert c.get("/api/v1/workspaces").json()["results"][0]["slug"] == "edge"
    assert c.get("/api/v1/workspaces/edge/").json()["owner"] == "playback"
    # variables: sensitive values are write-only
    r = c.post(
        "/api/v1/workspaces/edge/variables",
        {"key": "secret", "value": SECRET, "sensitive": True},
        format="json",
    )
    assert r.status_code == 201 and r.json()["value"] is None
    listed = c.get("/api/v1/workspaces/edge/variables").json()
    assert listed == [
        {
            "id": listed[0]["id"],
            "key": "secret",
            "value": None,
            "category": "terraform",
            "sensitive": True,
            "description": "",
            "updated_at": listed[0]["updated_at"],
        }
    ]
    r = c.patch(
        f"/api/v1/workspaces/edge/variables/{listed[0]['id']}", {"sensitive": False}, format="json"
    )
    assert r.status_code == 400 and "sensitive" in r.json()["message"]
    assert svc.terraform_workspaces.count() == 1
    assert AuditEvent.objects.filter(action="infra.variable.create").count() == 1
    # only admins pick the binary
    r = c.patch("/api/v1/workspaces/edge/", {"terraform_bin": "/bin/sh"}, format="json")
    assert r.status_code == 403


@pytest.mark.parametrize(
    "body, field",
    [
        ({"files": {"../evil.tf": "x"}}, "files"),
        ({"files": "not a dict"}, "files"),
        ({"source": "git", "repository_url": "", "files": {}}, "repository_url"),
        ({"source": "git", "repository_url": "https://x/y.git", "ref": "--upload-pack=x"}, "ref"),
        ({"slug": "new"}, "slug"),
    ],
)
def test_bad_input_is_400_with_where(ws_root, alice, squad, upstream, body, field):
    r = create(client_for(alice), squad, upstream, **body)
    assert r.status_code == 400, r.content
    assert field in r.json()["errors"] or field in r.json()["message"]


def test_bad_variable_names(ws_root, alice, squad, upstream):
    c = client_for(alice)
    create(c, squad, upstream)
    for key in ("TF_DATA_DIR", "PGPASSWORD", "PG_CONN_STR"):  # the last two: the pg backend's
        r = c.post(
            "/api/v1/workspaces/edge/variables",
            {"key": key, "value": "/", "category": "env"},
            format="json",
        )
        assert r.status_code == 400 and "set by Backline" in r.json()["message"], key
    r = c.post("/api/v1/workspaces/edge/variables", {"key": "1abc", "value": "x"}, format="json")
    assert r.status_code == 400 and "key" in r.json()["errors"]


def test_permissions_and_scopes(ws_root, alice, bob, charlie, squad, upstream, make_token):
    create(client_for(alice), squad, upstream)
    assert client_for(bob).post("/api/v1/workspaces/edge/runs", {}).status_code == 403
    assert client_for(charlie).get("/api/v1/workspaces/edge/").status_code == 200
    from rest_framework.test import APIClient

    assert APIClient().get("/api/v1/workspaces/").status_code == 401
    weak = token_client(make_token(squad, ["pipelines:run"]))
    r = weak.post("/api/v1/workspaces/edge/runs", {}, format="json")
    assert r.status_code == 403 and "infra:apply" in r.json()["message"]
    bot = token_client(make_token(squad, ["infra:apply"]))
    r = bot.post("/api/v1/workspaces/edge/runs", {"message": "from a bot"}, format="json")
    assert r.status_code == 201 and r.json()["status"] == "pending"
    assert AuditEvent.objects.get(action="infra.run.plan").door == "api"
    assert client_for(alice).post("/api/v1/workspaces/edge/force-unlock").status_code == 403


def test_plan_apply_discard_cancel_log_via_api(ws_root, alice, squad, upstream, make_workspace):
    ws = make_workspace(upstream_path=upstream)
    c = client_for(alice)
    r = c.post(f"/api/v1/workspaces/{ws.slug}/runs", {"message": "api"}, format="json")
    run_id = r.json()["id"]
    # apply before the plan exists → 409 with the current state
    r = c.post(f"/api/v1/terraform-runs/{run_id}/apply")
    assert r.status_code == 409 and r.json()["current"] == "pending"
    runner.execute_plan(run_id)
    body = c.get(f"/api/v1/terraform-runs/{run_id}/").json()
    assert body["status"] == "planned" and body["summary"]["output_changes"] == 3
    # the log, by offset
    log = c.get(f"/api/v1/terraform-runs/{run_id}/log?offset=0").json()
    assert "terraform plan" in log["text"] and log["complete"] is False
    tail = c.get(f"/api/v1/terraform-runs/{run_id}/log?offset={log['next_offset']}").json()
    assert tail["text"] == "" and tail["next_offset"] == log["next_offset"]
    bad = c.get(f"/api/v1/terraform-runs/{run_id}/log?offset=-3")
    assert bad.status_code == 400 and "-3" in bad.json()["errors"]["offset"][0]
    assert c.post(f"/api/v1/terraform-runs/{run_id}/cancel").status_code == 409
    r = c.post(f"/api/v1/terraform-runs/{run_id}/apply")
    assert r.status_code == 200 and r.json()["status"] == "confirmed"
    assert c.post(f"/api/v1/terraform-runs/{run_id}/apply").status_code == 409
    runner.execute_apply(run_id)
    assert c.get(f"/api/v1/terraform-runs/{run_id}").json()["status"] == "applied"
    outs = c.get(f"/api/v1/workspaces/{ws.slug}/outputs").json()["outputs"]
    assert outs["token"]["value"] is None and outs["greeting"]["value"] == "hello world"
    assert SECRET not in str(c.get(f"/api/v1/terraform-runs/{run_id}/log").json())
    # a queued run behind a planned one: discard releases, cancel of pending is immediate
    second = c.post(f"/api/v1/workspaces/{ws.slug}/runs", {}, format="json").json()["id"]
    Variable.objects.filter(workspace=ws, key="name").update(value="moon")
    runner.execute_plan(second)
    third = c.post(f"/api/v1/workspaces/{ws.slug}/runs", {}, format="json").json()
    assert third["waiting_for"].startswith("Waiting for run #2 (awaiting confirmation)")
    r = c.post(f"/api/v1/terraform-runs/{third['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "canceled"
    r = c.post(f"/api/v1/terraform-runs/{second}/discard", {"reason": "not now"}, format="json")
    assert r.json()["status"] == "discarded" and r.json()["discard_reason"] == "not now"
    assert Workspace.objects.get(pk=ws.pk).lock_run_id is None


def test_pages_render_and_buttons(ws_root, alice, charlie, squad, upstream, make_workspace):
    from django.test import Client

    ws = make_workspace(upstream_path=upstream)
    c = Client()
    c.force_login(alice)
    assert c.get("/infra/").status_code == 200
    r = c.post(f"/infra/{ws.slug}/plan", {"message": "from the page"})
    run = TerraformRun.objects.get(workspace=ws)
    assert r.status_code == 302 and r["Location"] == f"/infra/runs/{run.pk}/"
    runner.execute_plan(run.pk)
    page = c.get(f"/infra/runs/{run.pk}/").content.decode()
    assert 'id="apply-btn"' in page and "(sensitive value)" in page and SECRET not in page
    # the live tail: 200 while the run is active, 286 once over and fully read
    assert c.get(f"/infra/runs/{run.pk}/log?offset=0", HTTP_HX_REQUEST="true").status_code == 200
    bad = c.get(f"/infra/runs/{run.pk}/log?offset=x")
    assert bad.status_code == 400 and b"offset must be a whole number" in bad.content
    c.post(f"/infra/runs/{run.pk}/apply")
    runner.execute_apply(run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.APPLIED, log_text(run)
    r = c.get(f"/infra/runs/{run.pk}/log?offset={run.log_size}", HTTP_HX_REQUEST="true")
    assert r.status_code == 286
    r = c.get(f"/infra/runs/{run.pk}/?part=status", HTTP_HX_REQUEST="true")
    assert r.status_code == 286 and "applied" in r.content.decode()
    detail = c.get(f"/infra/{ws.slug}/").content.decode()
    assert "hello world" in detail and SECRET not in detail
    # a viewer sees no buttons
    v = Client()
    v.force_login(charlie)
    assert 'id="plan-btn"' not in v.get(f"/infra/{ws.slug}/").content.decode()
    r = v.post(f"/infra/{ws.slug}/plan", follow=True)
    assert "Only members of the owning squad" in r.content.decode()
    # the create form
    r = c.post(
        "/infra/new",
        {
            "slug": "cache",
            "name": "Cache",
            "owner": "playback",
            "source": "stored",
            "main_tf": 'output "a" {\n  value = 1\n}\n',
            "drift_checks": "on",
        },
    )
    assert r.status_code == 302 and Workspace.objects.get(slug="cache").files["main.tf"]
    r = c.post("/infra/new", {"slug": "x", "name": "X", "owner": "playback", "source": "stored"})
    assert r.status_code == 200 and "needs some Terraform code" in r.content.decode()
