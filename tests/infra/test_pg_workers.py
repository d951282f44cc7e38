"""Acceptance (issue 14): with the pg backend, two real Celery workers with different
``BACKLINE_VAR_DIR`` (two hosts, as far as their disks go) plan and apply the same workspace
alternately, each seeing the other's state, a plan made on one applied by the other, a lost
worker disk losing nothing, and stale plans still refused. Real /usr/local/bin/terraform with
``terraform_data``; the sandbox is on (bwrap)."""

import json
import shutil
import time

import pytest

from infra import services, tfstate
from infra.models import RunStatus, TerraformRun, Workspace
from portal.actors import Actor
from portal.errors import Conflict
from tests.conftest import WorkerProcess
from tests.infra.conftest import log_text, state_document, terraform_binary

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

BUSY = (RunStatus.PENDING, RunStatus.PLANNING, RunStatus.CONFIRMED, RunStatus.APPLYING)


def config(value):
    return {
        "main.tf": f'resource "terraform_data" "net" {{\n  input = "{value}"\n}}\n'
        f'output "net" {{\n  value = terraform_data.net.output\n}}\n'
    }


class Host:
    """One worker with its own var folder (and so its own workspace root)."""

    def __init__(self, name, base):
        self.name = name
        self.var = base / name / "var"
        self.root = self.var / "workspaces"
        self.root.mkdir(parents=True)
        self.worker = None

    def start(self):
        env = {"BACKLINE_VAR_DIR": str(self.var), "BACKLINE_WORKSPACE_ROOT": str(self.root)}
        self.worker = WorkerProcess(concurrency=1, env=env, name=f"pg-{self.name}").start(60)
        return self

    def stop(self):
        if self.worker:
            self.worker.stop()
            self.worker = None

    def has_run_dir(self, run):
        return (
            self.root / "infra" / f"ws-{run.workspace.state_key}" / "runs" / str(run.pk)
        ).is_dir()


def settled(run, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = TerraformRun.objects.select_related("workspace").get(pk=run.pk)
        if row.status not in BUSY:
            return row
        time.sleep(0.2)
    raise AssertionError(f"run {run.pk} still {row.status} after {timeout}s: {log_text(row)}")


def plan_on(host, ws, alice):
    run = settled(services.queue_run(Workspace.objects.get(pk=ws.pk), actor=Actor(user=alice)))
    assert host.has_run_dir(run), f"run #{run.number} was not planned by {host.name}"
    return run


def apply_on(host, run, alice):
    services.apply_run(run, actor=Actor(user=alice))
    run = settled(run)
    assert run.status == RunStatus.APPLIED, run.error or log_text(run)
    assert host.has_run_dir(run)
    return run


def set_config(ws, value):
    Workspace.objects.filter(pk=ws.pk).update(files=config(value))


@pytest.fixture
def hosts(tmp_path):
    made = [Host("a", tmp_path), Host("b", tmp_path)]
    yield made
    for host in made:
        host.stop()


def test_two_workers_share_the_pg_state(hosts, squad, alice, admin_user, settings):
    a, b = hosts
    ws = services.create_workspace(
        squad, actor=Actor(user=alice), slug="shared", name="Shared", files=config("one")
    )
    Workspace.objects.filter(pk=ws.pk).update(terraform_bin=terraform_binary())
    assert ws.backend == Workspace.Backend.PG

    # 1. host a creates the resource
    a.start()
    run = plan_on(a, ws, alice)
    assert run.status == RunStatus.PLANNED and run.summary["add"] == 1, run.error
    apply_on(a, run, alice)
    created = state_document(ws)["resources"][0]["instances"][0]["attributes"]["id"]
    a.stop()

    # 2. host b sees it: an update in place, not a second create; and applies it
    b.start()
    set_config(ws, "two")
    run = plan_on(b, ws, alice)
    assert (run.summary["add"], run.summary["change"]) == (0, 1), run.summary
    apply_on(b, run, alice)
    assert state_document(ws)["resources"][0]["instances"][0]["attributes"]["id"] == created

    # 3. planned on b, applied on a: the saved plan travels through the database
    set_config(ws, "three")
    planned_on_b = plan_on(b, ws, alice)
    assert planned_on_b.status == RunStatus.PLANNED
    b.stop()
    shutil.rmtree(b.var)  # and b's disk is lost: nothing of the workspace was only there
    a.start()
    applied = apply_on(a, planned_on_b, alice)
    assert "Applying the plan saved by the worker that planned" in log_text(applied)
    ws.refresh_from_db()
    assert ws.outputs["net"]["value"] == "three"

    # 4. stale plans are still refused: a plan on a, then (after a force-unlock) another run
    # planned and applied on the other host; the first plan can no longer be applied
    set_config(ws, "four")
    stale = plan_on(a, ws, alice)
    assert stale.status == RunStatus.PLANNED
    services.force_unlock(ws, actor=Actor(user=admin_user))
    a.stop()
    b.var.mkdir(parents=True)
    b.root.mkdir()
    b.start()
    set_config(ws, "five")
    newer = apply_on(b, plan_on(b, ws, alice), alice)
    with pytest.raises(Conflict, match="stale") as exc:
        services.apply_run(stale, actor=Actor(user=alice))
    assert exc.value.state == RunStatus.DISCARDED
    stale.refresh_from_db()
    assert stale.status == RunStatus.DISCARDED
    assert f"run #{newer.number} was applied after this plan" in stale.discard_reason
    ws.refresh_from_db()
    doc = state_document(ws)
    assert ws.outputs["net"]["value"] == "five" and doc["outputs"]["net"]["value"] == "five"
    assert (ws.state_serial, ws.state_lineage) == (doc["serial"], doc["lineage"])
    # no state on either disk: it lives in PostgreSQL only (tfdata/ holds Terraform's backend
    # settings: the pg backend, its schema, no password)
    password = tfstate.role_password(ws)
    for host in hosts:
        for path in host.root.rglob("terraform.tfstate"):
            doc = json.loads(path.read_text())
            assert path.parent.name == "tfdata" and "resources" not in doc, path
            assert doc["backend"]["type"] == "pg" and password not in path.read_text()
    assert Workspace.objects.get(pk=ws.pk).lock_run_id is None
