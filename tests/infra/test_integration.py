"""Drift shown on the service page, the squad page, the status board and the scorecard; a
workspace whose configuration comes from a git repository."""

import subprocess

import pytest
from django.test import Client

from infra import runner, services
from infra.models import DriftStatus, RunStatus, Workspace
from portal.actors import Actor
from squads import scorecards
from tests.factories import ServiceFactory
from tests.infra.conftest import CONFIG, log_text

pytestmark = pytest.mark.django_db

DRIFT = [
    {
        "address": "output.upstream",
        "action": "update",
        "attributes": [{"name": "value", "before": '"one"', "after": '"two"'}],
    }
]


def test_drift_on_service_squad_board_and_scorecard(alice, squad, tf_bin):
    svc = ServiceFactory(slug="player-api", owner=squad)
    clean = ServiceFactory(slug="clean-api", owner=squad)
    bare = ServiceFactory(slug="bare-api", owner=squad)
    ws = Workspace.objects.create(slug="player-net", name="Player network", owner=squad)
    ws.services.set([svc])
    ok = Workspace.objects.create(
        slug="clean-net", name="Clean network", owner=squad, drift_status=DriftStatus.NONE
    )
    ok.services.set([clean])
    cards = scorecards.evaluate([svc, clean, bare])
    rule = {s: {r.rule.key: r.passed for r in cards[s.pk].results} for s in (svc, clean, bare)}
    assert rule[svc]["infra_no_drift"] is True  # not drifted (never checked)
    Workspace.objects.filter(pk=ws.pk).update(drift_status=DriftStatus.DRIFTED, drift_summary=DRIFT)
    cards = scorecards.evaluate([svc, clean, bare])
    rule = {s: {r.rule.key: r.passed for r in cards[s.pk].results} for s in (svc, clean, bare)}
    assert rule[svc]["infra_no_drift"] is False
    assert rule[clean]["infra_no_drift"] is True
    assert rule[bare]["infra_no_drift"] is None  # no workspace: does not apply

    c = Client()
    c.force_login(alice)
    page = c.get(f"/services/{svc.slug}/").content.decode()
    panel_url = f"/infra/services/{svc.slug}/panel"
    assert 'id="infra-panel"' in page and f'hx-get="{panel_url}"' in page  # loads by HTMX
    panel = c.get(panel_url).content.decode()
    assert "Player network" in panel and "drifted" in panel
    squad_page = c.get(f"/squads/{squad.slug}/").content.decode()
    assert "Clean network" in squad_page and "no drift" in squad_page
    home = c.get("/").content.decode()
    assert 'id="board-infra"' in home and "Player network" in home
    detail = c.get(f"/infra/{ws.slug}/").content.decode()
    assert "Drift detected" in detail and "output.upstream" in detail
    assert c.get("/infra/?drift_status=drifted").content.decode().count("Player network") >= 1
    assert "Clean network" not in c.get("/infra/?drift_status=drifted").content.decode()
    metrics = c.get("/metrics").content.decode()
    assert (
        'backline_terraform_workspace_drifted{squad="playback",workspace="player-net"} 1.0'
        in metrics
    )
    assert (
        'backline_terraform_workspace_drifted{squad="playback",workspace="clean-net"} 0.0'
        in metrics
    )


def _git(*args, cwd):
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def test_git_source_with_path(ws_root, alice, squad, tf_bin, tmp_path, upstream):
    repo = tmp_path / "repo"
    (repo / "infra" / "net").mkdir(parents=True)
    (repo / "infra" / "net" / "main.tf").write_text(CONFIG)
    (repo / "README.md").write_text("not terraform\n")
    _git("init", "-q", "-b", "main", cwd=repo)
    _git("add", ".", cwd=repo)
    _git("commit", "-qm", "net", cwd=repo)
    actor = Actor(user=alice)
    ws = services.create_workspace(
        squad,
        actor=actor,
        slug="from-git",
        name="From git",
        source="git",
        repository_url=str(repo),
        ref="main",
        path="infra/net",
        files={},
    )
    Workspace.objects.filter(pk=ws.pk).update(terraform_bin=tf_bin)
    for key, value in (
        ("name", "git"),
        ("secret", "x-secret-x"),
        ("upstream_state", str(upstream)),
    ):
        services.set_variable(ws, actor=actor, key=key, value=value, sensitive=key == "secret")
    run = services.queue_run(ws, actor=actor)
    runner.execute_plan(run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.PLANNED, run.error or log_text(run)
    assert "git clone --depth 1 --branch main" in log_text(run)
    assert {o["name"] for o in run.summary["outputs"]} == {"greeting", "token", "upstream"}
    # a path that is not in the repository errors readably
    Workspace.objects.filter(pk=ws.pk).update(path="nowhere")
    services.discard_run(run, actor=actor)
    bad = services.queue_run(ws, actor=actor)
    runner.execute_plan(bad.pk)
    bad.refresh_from_db()
    assert bad.status == RunStatus.ERRORED and "'nowhere' does not exist" in bad.error


def test_push_webhook_plans_git_workspaces_touching_their_path(
    alice, squad, shared_data, settings, client
):
    import json

    from portal.inbound import signature_for

    settings.GITHUB_WEBHOOK_SECRET = "hook-secret"
    payload = json.loads((shared_data / "github-webhooks" / "push-payload.json").read_text())
    url = payload["repository"]["clone_url"]
    hit = Workspace.objects.create(
        slug="hit",
        name="Hit",
        owner=squad,
        source="git",
        repository_url=url,
        ref="main",
        path="infra/net",
    )
    Workspace.objects.create(
        slug="elsewhere",
        name="Elsewhere",
        owner=squad,
        source="git",
        repository_url=url,
        ref="main",
        path="infra/db",
    )
    payload["ref"] = "refs/heads/main"
    payload["deleted"] = False
    payload["commits"] = [{"added": [], "modified": ["infra/net/main.tf"], "removed": []}]
    body = json.dumps(payload).encode()

    def post(sig, event="push"):
        return client.post(
            "/hooks/terraform",
            body,
            content_type="application/json",
            HTTP_X_HUB_SIGNATURE_256=sig,
            HTTP_X_GITHUB_EVENT=event,
        )

    assert post("sha256=bad").status_code == 401
    r = post(signature_for("hook-secret", body))
    assert r.status_code == 202, r.content
    assert [x["workspace"] for x in r.json()["runs"]] == ["hit"]
    run = hit.runs.get()
    assert run.trigger == "webhook" and run.status == RunStatus.PENDING
    pong = post(signature_for("hook-secret", body), event="ping").json()  # one endpoint: a pong
    assert pong["message"] == "pong" and sorted(pong["workspaces"]) == ["elsewhere", "hit"]
    assert post(signature_for("hook-secret", body), event="issues").json()["ignored"]
