"""One inbound GitHub endpoint: ``/hooks/github`` (and its alias ``/hooks/terraform``) verifies a
delivery once and hands a verified push to every registered receiver, pipelines and infra."""

import ast
import json
from pathlib import Path

import pytest
from django.test import Client

from infra.models import Workspace
from pipelines.models import PipelineRun
from portal import inbound
from portal.inbound import signature_for
from tests.factories import ServiceFactory

SECRET = "shared-repo-secret"
ROOT = Path(__file__).resolve().parents[2]


def post(url, payload, *, secret=SECRET, event="push", delivery="d-1"):
    raw = json.dumps(payload).encode()
    return Client().post(
        url,
        raw,
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256=signature_for(secret, raw),
        HTTP_X_GITHUB_EVENT=event,
        HTTP_X_GITHUB_DELIVERY=delivery,
    )


@pytest.fixture
def payload(shared_data):
    data = json.loads(
        (shared_data / "github-webhooks" / "push-with-new-branch.payload.json").read_text()
    )
    data["ref"] = "refs/heads/main"
    data["commits"] = [{"added": [], "modified": ["infra/net/main.tf"], "removed": []}]
    return data


@pytest.fixture
def repo_users(db, squad, payload):
    """A service and a git workspace linked to it, both using the payload's repository."""
    url = payload["repository"]["clone_url"]
    svc = ServiceFactory(
        slug="hello", owner=squad, repository_url=url, webhook_secret=SECRET, default_branch="main"
    )
    ws = Workspace.objects.create(
        slug="net",
        name="Net",
        owner=squad,
        source="git",
        repository_url=url,
        ref="main",
        path="infra/net",
    )
    ws.services.add(svc)
    return svc, ws


def test_the_receivers_are_registered_by_their_apps():
    assert {"pipelines", "infra"} <= set(inbound.RECEIVERS)
    assert inbound.RECEIVERS["pipelines"].label == "services"
    assert inbound.RECEIVERS["infra"].label == "workspaces"


@pytest.mark.parametrize("url", ["/hooks/github", "/hooks/terraform"])
def test_one_verified_push_reaches_pipelines_and_infra(repo_users, payload, url):
    svc, ws = repo_users
    resp = post(url, payload)
    assert resp.status_code == 202, resp.content
    runs = resp.json()["runs"]
    assert {(r["kind"], r.get("service") or r.get("workspace")) for r in runs} == {
        ("pipeline", "hello"),
        ("terraform", "net"),
    }
    assert PipelineRun.objects.get(service=svc).ref == "main"
    assert ws.runs.get().trigger == "webhook"


def test_the_workspace_is_signed_with_its_linked_services_secret(repo_users, payload):
    assert post("/hooks/github", payload, secret="wrong").status_code == 401
    assert not Workspace.objects.get(slug="net").runs.exists()
    resp = post("/hooks/github", payload, event="ping")
    assert resp.json() == {
        "ok": True,
        "event": "ping",
        "message": "pong",
        "services": ["hello"],
        "workspaces": ["net"],
        "repositories": [],  # discovered repositories it names (squads.discovery): none here
    }


def test_a_push_elsewhere_in_the_repository_plans_nothing(repo_users, payload):
    payload["commits"] = [{"added": ["docs/readme.md"], "modified": [], "removed": []}]
    resp = post("/hooks/github", payload)
    assert resp.status_code == 202
    assert [r["kind"] for r in resp.json()["runs"]] == ["pipeline"]
    assert not Workspace.objects.get(slug="net").runs.exists()


def test_the_base_layer_imports_no_app_above_it():
    """portal.inbound learns of pipelines and infra only through the receivers they register."""
    tree = ast.parse((ROOT / "portal" / "inbound.py").read_text())
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not imported & {"squads", "pipelines", "infra", "monitoring"}, imported
    for app in ("pipelines", "infra"):
        source = (ROOT / app / "webhooks.py").read_text()
        assert "import _" not in source and ", _" not in source.split("\n\n\n")[0]
