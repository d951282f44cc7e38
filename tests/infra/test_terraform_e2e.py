"""End to end with the machine's real Terraform 1.11 (``/usr/local/bin/terraform``) over
``terraform_data`` resources (Terraform's built-in provider: nothing is downloaded): create,
update, replace, destroy, a ``moved`` block, an ``import`` block, a ``removed`` block that
forgets, a value turning sensitive and a sensitive output, through Backline's run path
(plan → confirm → apply; in-process here, through a real Celery worker in the last test).

Every plan is also checked against Terraform's own verdict: ``terraform show -json`` of the
saved plan says ``applyable``; Backline's run state follows it, and Backline's own rule,
given the same document without that field, reaches the same answer."""

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from infra import runner, services
from infra.models import RunStatus, TerraformRun, Workspace
from infra.planparse import SENSITIVE, parse_plan
from portal.actors import Actor
from tests.conftest import client_for
from tests.infra.conftest import log_text, state_document
from tests.infra.test_worker import wait_for

TF111 = "/usr/local/bin/terraform"
pytestmark = pytest.mark.skipif(
    not Path(TF111).exists(),
    reason=f"the machine's Terraform 1.11 is not installed at {TF111}",
)


def data(name, value, *, replace_on=None):
    triggers = f"\n  triggers_replace = [{json.dumps(replace_on)}]" if replace_on else ""
    return f'resource "terraform_data" "{name}" {{\n  input = {json.dumps(value)}{triggers}\n}}\n'


def terraform_doc(run):
    """``terraform show -json`` of the run's saved plan, as Terraform itself writes it."""
    ws = run.workspace
    env, _ = runner.build_env(ws, runner.ws_root(ws) / "tfdata")
    result = subprocess.run(
        [TF111, "show", "-json", str(runner.plan_file(run))],
        cwd=runner.run_dir(run) / "src",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return runner.json_document(result.stdout)


def check_verdict(run):
    """Terraform's applyable = Backline's summary = the run state = Backline's own rule."""
    doc = terraform_doc(run)
    assert isinstance(doc.get("applyable"), bool), "Terraform 1.11 writes applyable"
    assert run.summary["applyable"] is doc["applyable"]
    assert run.summary["applyable_from"] == "terraform"
    stripped = {k: v for k, v in doc.items() if k != "applyable"}
    assert parse_plan(stripped)["applyable"] is doc["applyable"]
    want = RunStatus.PLANNED if doc["applyable"] else RunStatus.PLANNED_AND_FINISHED
    assert run.status == want, run.error or log_text(run)
    return doc


def plan(ws, user, files):
    Workspace.objects.filter(pk=ws.pk).update(files=files)
    run = services.queue_run(Workspace.objects.get(pk=ws.pk), actor=Actor(user=user))
    runner.execute_plan(run.pk)
    run.refresh_from_db()
    check_verdict(run)
    return run


def apply(run, user):
    services.apply_run(run, actor=Actor(user=user))
    runner.execute_apply(run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.APPLIED, run.error or log_text(run)
    return run


def state(ws):
    """{address: attributes} of the workspace's state (pg or local)."""
    doc = state_document(ws)
    return {
        f"{r['type']}.{r['name']}": r["instances"][0]["attributes"]
        for r in doc["resources"]
        if r["mode"] == "managed"
    }


def counts(run):
    keys = ("add", "change", "destroy", "replace", "forget", "import", "move")
    return {k: run.summary[k] for k in keys if run.summary[k]}


def workspace(squad, slug, files=None):
    return Workspace.objects.create(
        slug=slug, name=slug, owner=squad, files=files or {}, terraform_bin=TF111
    )


@pytest.fixture
def ws111(ws_root, squad):
    return workspace(squad, "tf111")


@pytest.mark.django_db
def test_create_update_replace_destroy(ws111, alice):
    run = plan(ws111, alice, {"main.tf": data("a", "one") + data("b", "b", replace_on="v1")})
    assert run.summary["terraform_version"].startswith("1.11")
    assert counts(run) == {"add": 2}
    assert run.summary["plan_line"] == "Plan: 2 to add, 0 to change, 0 to destroy."
    apply(run, alice)
    ids = {k: v["id"] for k, v in state(ws111).items()}
    assert set(ids) == {"terraform_data.a", "terraform_data.b"}

    run = plan(ws111, alice, {"main.tf": data("a", "two") + data("b", "b", replace_on="v1")})
    assert counts(run) == {"change": 1}
    (res,) = run.summary["resources"]
    rows = {a["name"]: a for a in res["attributes"]}
    assert (rows["input"]["before"], rows["input"]["after"]) == ('"one"', '"two"')
    apply(run, alice)
    assert state(ws111)["terraform_data.a"]["input"]["value"] == "two"

    run = plan(ws111, alice, {"main.tf": data("a", "two") + data("b", "b", replace_on="v2")})
    assert counts(run) == {"replace": 1}
    assert run.summary["plan_line"] == "Plan: 1 to add, 0 to change, 1 to destroy."
    apply(run, alice)
    after = state(ws111)
    assert after["terraform_data.b"]["id"] != ids["terraform_data.b"]
    assert after["terraform_data.a"]["id"] == ids["terraform_data.a"]

    run = plan(ws111, alice, {"main.tf": data("a", "two")})
    assert counts(run) == {"destroy": 1}
    apply(run, alice)
    assert set(state(ws111)) == {"terraform_data.a"}

    run = plan(ws111, alice, {"main.tf": data("a", "two")})
    assert run.status == RunStatus.PLANNED_AND_FINISHED and run.summary["applyable"] is False
    with pytest.raises(Exception, match="only a run awaiting confirmation"):
        services.apply_run(run, actor=Actor(user=alice))


@pytest.mark.django_db
def test_a_moved_block_alone_is_planned_and_applied(ws111, alice):
    apply(plan(ws111, alice, {"main.tf": data("old", "x")}), alice)
    before = state(ws111)["terraform_data.old"]["id"]
    moved = "moved {\n  from = terraform_data.old\n  to   = terraform_data.new\n}\n"
    run = plan(ws111, alice, {"main.tf": data("new", "x") + moved})
    assert run.status == RunStatus.PLANNED  # was planned_and_finished: never applyable
    assert counts(run) == {"move": 1} and run.summary["resource_changes"] == 0
    assert run.summary["moves"] == [{"from": "terraform_data.old", "to": "terraform_data.new"}]
    assert "moved: terraform_data.old -> terraform_data.new" in log_text(run)
    page = client_for(alice).get(f"/infra/runs/{run.pk}/").content.decode()
    assert (
        'id="apply-btn"' in page and "terraform_data.old</code> → <code>terraform_data.new" in page
    )
    apply(run, alice)
    assert state(ws111) == {"terraform_data.new": state(ws111)["terraform_data.new"]}
    assert state(ws111)["terraform_data.new"]["id"] == before  # moved, not recreated
    again = plan(ws111, alice, {"main.tf": data("new", "x") + moved})
    assert again.status == RunStatus.PLANNED_AND_FINISHED


@pytest.mark.django_db
def test_an_import_block_alone_is_planned_and_applied(ws111, alice):
    # terraform_data supports import (Terraform ≥ 1.5): the import id becomes its id
    config = 'import {\n  to = terraform_data.c\n  id = "imported-id-1"\n}\n'
    config += 'resource "terraform_data" "c" {\n}\n'
    run = plan(ws111, alice, {"main.tf": config})
    assert run.status == RunStatus.PLANNED
    assert counts(run) == {"import": 1}
    assert run.summary["plan_line"] == "Plan: 1 to import, 0 to add, 0 to change, 0 to destroy."
    assert run.summary["resources"][0]["importing"] is True
    assert "1 to import" in log_text(run)
    page = client_for(alice).get(f"/infra/runs/{run.pk}/").content.decode()
    assert "Plan: 1 to import, 0 to add" in page and 'id="apply-btn"' in page
    apply(run, alice)
    assert state(ws111)["terraform_data.c"]["id"] == "imported-id-1"


@pytest.mark.django_db
def test_a_removed_block_forgets_without_destroying(ws111, alice):
    apply(plan(ws111, alice, {"main.tf": data("a", "a") + data("b", "b")}), alice)
    removed = "removed {\n  from = terraform_data.b\n  lifecycle {\n    destroy = false\n  }\n}\n"
    run = plan(ws111, alice, {"main.tf": data("a", "a") + removed})
    assert run.status == RunStatus.PLANNED
    assert counts(run) == {"forget": 1}  # not a change, not a destroy
    assert run.summary["plan_line"] == "Plan: 0 to add, 0 to change, 0 to destroy, 1 to forget."
    page = client_for(alice).get(f"/infra/runs/{run.pk}/").content.decode()
    assert "1 to forget" in page and "not destroyed" in page
    assert "Plan: 0 to add, 0 to change, 0 to destroy, 1 to forget." in log_text(run)
    apply(run, alice)
    assert set(state(ws111)) == {"terraform_data.a"}


def everything_shown(run, user):
    """The run's API document, its page, the workspace's page and outputs, and the log."""
    c = client_for(user)
    ws = run.workspace
    return "\n".join(
        [
            json.dumps(c.get(f"/api/v1/terraform-runs/{run.pk}").json()),
            c.get(f"/infra/runs/{run.pk}/").content.decode(),
            c.get(f"/infra/{ws.slug}/").content.decode(),
            json.dumps(c.get(f"/api/v1/workspaces/{ws.slug}/outputs").json()),
            json.dumps(c.get(f"/api/v1/terraform-runs/{run.pk}/log").json()),
            log_text(run),
        ]
    )


@pytest.mark.django_db
@pytest.mark.parametrize("how", ["variable marked sensitive", "sensitive() around it"])
def test_a_value_turning_sensitive_is_never_shown(ws111, alice, how):
    # derived from the configuration, so that the value itself is written nowhere in it
    value = "turning-" + hashlib.md5(b"seed-7f3a").hexdigest()  # noqa: S324 - not for security
    variable = 'variable "v" {\n  type = string\n  default = "seed-7f3a"%s\n}\n'
    resource = 'resource "terraform_data" "a" {\n  input = %s\n}\n'
    derived = '"turning-${md5(var.v)}"'
    first = variable % "" + resource % derived
    apply(plan(ws111, alice, {"main.tf": first}), alice)
    if how == "variable marked sensitive":
        second = variable % "\n  sensitive = true" + resource % derived
    else:
        second = variable % "" + resource % f"sensitive({derived})"
    run = plan(ws111, alice, {"main.tf": second})
    doc = terraform_doc(run)
    (rc,) = doc["resource_changes"]
    assert rc["change"]["before"]["input"] == rc["change"]["after"]["input"] == value
    assert rc["change"]["after_sensitive"] == {"input": True}  # the case of the issue
    (row,) = run.summary["resources"][0]["attributes"]
    assert row["name"] == "input" and row["before"] == row["after"] == SENSITIVE
    assert row["sensitivity_changed"] is True
    shown = everything_shown(run, alice)
    assert "(sensitive value)" in shown and value not in shown
    assert "sensitivity changes; the value is hidden on both sides" in shown  # the run page
    apply(run, alice)
    assert value not in everything_shown(TerraformRun.objects.get(pk=run.pk), alice)


@pytest.mark.django_db
def test_a_sensitive_output_is_never_shown(ws111, alice):
    value = "tok-" + hashlib.md5(b"backline").hexdigest()  # noqa: S324 - not for security
    config = data("a", "a") + 'output "tok" {\n  value     = "tok-${md5("backline")}"\n'
    config += "  sensitive = true\n}\n"
    run = plan(ws111, alice, {"main.tf": config})
    outs = {o["name"]: o for o in run.summary["outputs"]}
    assert outs["tok"]["sensitive"] is True and outs["tok"]["after"] == SENSITIVE
    assert value not in everything_shown(run, alice)
    run = apply(run, alice)
    assert Workspace.objects.get(pk=ws111.pk).outputs["tok"]["display"] == SENSITIVE
    shown = everything_shown(run, alice)
    assert "tok = (sensitive value)" in shown and value not in shown


def run_doc_once_in(client, run_id, states, what):
    """The run's API document once its status is one of ``states`` (60 s deadline)."""

    def ready():
        doc = client.get(f"/api/v1/terraform-runs/{run_id}").json()
        return doc if doc["status"] in states else None

    return wait_for(ready, 60, what)


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_move_and_import_through_the_api_and_a_real_worker(worker_root, squad, alice):
    ws = workspace(squad, "tf111w")
    c = client_for(alice)

    def plan_and_apply(files):
        Workspace.objects.filter(pk=ws.pk).update(files=files)
        run_id = c.post(f"/api/v1/workspaces/{ws.slug}/runs", {}, format="json").json()["id"]
        doc = run_doc_once_in(c, run_id, {"planned", "planned_and_finished", "errored"}, "plan")
        assert doc["status"] == "planned", doc
        r = c.post(f"/api/v1/terraform-runs/{run_id}/apply")
        assert r.status_code == 200 and r.json()["status"] == "confirmed"
        doc = run_doc_once_in(c, run_id, {"applied", "errored", "discarded"}, "the apply")
        assert doc["status"] == "applied", doc
        return doc

    plan_and_apply({"main.tf": data("old", "x")})
    moved = "moved {\n  from = terraform_data.old\n  to   = terraform_data.new\n}\n"
    imported = 'import {\n  to = terraform_data.c\n  id = "from-the-api"\n}\n'
    imported += 'resource "terraform_data" "c" {\n}\n'
    doc = plan_and_apply({"main.tf": data("new", "x") + moved + imported})
    s = doc["summary"]
    assert (s["move"], s["import"], s["resource_changes"], s["applyable"]) == (1, 1, 0, True)
    assert s["plan_line"] == "Plan: 1 to import, 0 to add, 0 to change, 0 to destroy."
    assert set(state(Workspace.objects.get(pk=ws.pk))) == {"terraform_data.new", "terraform_data.c"}
