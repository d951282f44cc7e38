"""Plan → apply with the real Terraform the settings find (1.11 on this machine), run
in-process (the same code the Celery task calls); queue, stale plans, drift and errors.
Worker-process behaviour is in test_worker.py."""

import pytest

from infra import runner, services
from infra.models import DriftStatus, RunStatus, TerraformRun
from portal.actors import Actor
from portal.errors import Conflict
from portal.models import AuditEvent
from tests.conftest import client_for
from tests.infra.conftest import CONFIG, SECRET, edit_state, log_text, write_state

pytestmark = pytest.mark.django_db


def plan(ws, user, **kw):
    run = services.queue_run(ws, actor=Actor(user=user), **kw)
    assert run.status == RunStatus.PENDING
    runner.execute_plan(run.pk)
    run.refresh_from_db()
    return run


def apply(run, user):
    services.apply_run(run, actor=Actor(user=user))
    runner.execute_apply(run.pk)
    run.refresh_from_db()
    return run


@pytest.mark.parametrize("backend", ["pg", "local"])
def test_plan_apply_then_no_change_plan(ws_root, make_workspace, upstream, alice, backend):
    ws = make_workspace(upstream_path=upstream, backend=backend)
    run = plan(ws, alice, message="first")
    assert run.status == RunStatus.PLANNED, run.error or log_text(run)
    s = run.summary
    assert s["has_changes"] and s["output_changes"] == 3
    outs = {o["name"]: o for o in s["outputs"]}
    assert outs["greeting"]["after"] == '"hello world"'
    assert outs["upstream"]["after"] == '"one"'
    assert outs["token"]["after"] == "(sensitive value)"
    ws.refresh_from_db()
    assert ws.lock_run_id == run.pk  # awaiting confirmation holds the lock
    assert runner.plan_file(run).exists()

    run = apply(run, alice)
    assert run.status == RunStatus.APPLIED, run.error or log_text(run)
    ws.refresh_from_db()
    assert ws.lock_run_id is None
    assert ws.state_serial is not None and ws.state_lineage
    assert ws.outputs["greeting"]["value"] == "hello world"
    assert ws.outputs["token"] == {
        "sensitive": True,
        "type": "string",
        "value": None,
        "display": "(sensitive value)",
    }
    text = log_text(run)
    assert "Apply complete!" in text and "token = (sensitive value)" in text
    assert SECRET not in text and SECRET not in str(run.summary) and SECRET not in str(ws.outputs)
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"infra.run.plan", "infra.run.apply"} <= actions

    again = plan(ws, alice)
    assert again.status == RunStatus.PLANNED_AND_FINISHED
    assert again.has_changes is False
    ws.refresh_from_db()
    assert ws.lock_run_id is None


def test_apply_only_when_planned_409(ws_root, make_workspace, upstream, alice):
    ws = make_workspace(upstream_path=upstream)
    run = plan(ws, alice)
    run = apply(run, alice)
    with pytest.raises(Conflict, match="only a run awaiting confirmation"):
        services.apply_run(run, actor=Actor(user=alice))


def test_stale_plan_refused_after_a_second_apply(
    ws_root, make_workspace, upstream, alice, admin_user
):
    ws = make_workspace(upstream_path=upstream)
    first = plan(ws, alice)
    assert first.status == RunStatus.PLANNED
    # an admin force-unlocks; another run plans and applies in between
    services.force_unlock(ws, actor=Actor(user=admin_user))
    second = plan(ws, alice)
    assert second.status == RunStatus.PLANNED
    assert apply(second, alice).status == RunStatus.APPLIED
    with pytest.raises(Conflict, match="stale") as exc:
        services.apply_run(first, actor=Actor(user=alice))
    assert exc.value.state == RunStatus.DISCARDED
    first.refresh_from_db()
    assert first.status == RunStatus.DISCARDED
    assert f"run #{second.number} was applied after this plan" in first.discard_reason
    assert AuditEvent.objects.filter(action="infra.workspace.force_unlock").exists()
    assert AuditEvent.objects.filter(action="infra.run.discard_stale").exists()


@pytest.mark.parametrize("backend", ["pg", "local"])
def test_stale_plan_when_state_changed_outside_backline(
    ws_root, make_workspace, upstream, alice, backend
):
    ws = make_workspace(upstream_path=upstream, backend=backend)
    assert apply(plan(ws, alice), alice).status == RunStatus.APPLIED
    services.set_variable(ws, actor=Actor(user=alice), key="name", value="mars")
    pending = plan(ws, alice)
    assert pending.status == RunStatus.PLANNED
    # somebody runs terraform by hand against the same state: the serial moves on
    edit_state(ws, lambda data: {**data, "serial": data["serial"] + 1})
    with pytest.raises(Conflict, match=r"state changed after this plan was made \(serial"):
        services.apply_run(pending, actor=Actor(user=alice))
    pending.refresh_from_db()
    assert pending.status == RunStatus.DISCARDED


@pytest.mark.parametrize("backend", ["pg", "local"])
def test_drift_found_after_state_changed_outside(ws_root, make_workspace, upstream, alice, backend):
    ws = make_workspace(upstream_path=upstream, backend=backend)
    assert apply(plan(ws, alice), alice).status == RunStatus.APPLIED
    (check_id,) = services.schedule_drift_checks()  # applied, never checked: due
    assert services.schedule_drift_checks() == []  # already queued
    runner.execute_plan(check_id)
    check = TerraformRun.objects.get(pk=check_id)
    ws.refresh_from_db()
    assert check.status == RunStatus.PLANNED_AND_FINISHED, check.error or log_text(check)
    assert ws.drift_status == DriftStatus.NONE
    # the upstream workspace's state changes outside Backline
    write_state(upstream, {"val": "two"}, serial=2)
    ws.drift_checked_at = None
    ws.save()
    (run_id,) = services.schedule_drift_checks()
    runner.execute_plan(run_id)
    ws.refresh_from_db()
    assert ws.drift_status == DriftStatus.DRIFTED
    assert ws.drift_summary[0]["address"] == "output.upstream"
    assert ws.drift_summary[0]["attributes"][0]["after"] == '"two"'
    assert TerraformRun.objects.get(pk=run_id).status == RunStatus.PLANNED_AND_FINISHED
    assert AuditEvent.objects.filter(action="infra.workspace.drifted").count() == 1


def test_errored_with_readable_diagnostics(ws_root, make_workspace, alice):
    ws = make_workspace(files={"main.tf": 'output "x" {\n  value = var.nope\n}\n'}, variables=False)
    run = plan(ws, alice)
    assert run.status == RunStatus.ERRORED
    assert "Reference to undeclared input variable" in run.error
    (diag,) = run.diagnostics
    assert diag["filename"] == "main.tf" and diag["line"] == 2
    assert "Error: Reference to undeclared input variable" in log_text(run)
    ws.refresh_from_db()
    assert ws.lock_run_id is None


def test_queue_one_active_run_and_waiting_text(ws_root, make_workspace, upstream, alice):
    ws = make_workspace(upstream_path=upstream)
    first = plan(ws, alice)
    second = services.queue_run(ws, actor=Actor(user=alice))
    third = services.queue_run(ws, actor=Actor(user=alice))
    assert services.waiting_for(second) == (
        f"Waiting for run #{first.number} (awaiting confirmation) to finish."
    )
    assert "1 earlier run queued ahead" in services.waiting_for(third)
    assert runner.execute_plan(second.pk) == "not claimed"
    services.discard_run(first, actor=Actor(user=alice))
    ws.refresh_from_db()
    assert ws.lock_run_id == second.pk
    second.refresh_from_db()
    assert second.status == RunStatus.PENDING and second.enqueued_at is not None


def test_permissions(ws_root, make_workspace, upstream, alice, bob, make_token, squad):
    from django.core.exceptions import PermissionDenied

    ws = make_workspace(upstream_path=upstream)
    with pytest.raises(PermissionDenied):
        services.queue_run(ws, actor=Actor(user=bob))
    with pytest.raises(PermissionDenied):
        services.force_unlock(ws, actor=Actor(user=alice))


def test_beat_tasks_are_scheduled_and_run(ws_root, make_workspace, upstream, alice):
    from infra import tasks
    from portal.celery import _beat_schedule

    schedule = _beat_schedule()
    assert schedule["infra-drift-checks"]["task"] == "infra.tasks.schedule_drift_checks"
    assert schedule["infra-reap-lost-runs"]["task"] == "infra.tasks.reap_lost_runs"
    ws = make_workspace(upstream_path=upstream)
    assert tasks.schedule_drift_checks.apply().get() == []  # never applied: nothing to check
    assert apply(plan(ws, alice), alice).status == RunStatus.APPLIED
    (run_id,) = tasks.schedule_drift_checks.apply().get()
    assert tasks.plan_run.apply(args=[run_id]).get() == RunStatus.PLANNED_AND_FINISHED
    assert tasks.reap_lost_runs.apply().get() == 0


def test_sensitive_values_masked_even_when_terraform_prints_them(
    ws_root, make_workspace, upstream, alice
):
    leak = CONFIG + '\noutput "leak" {\n  value = nonsensitive(var.secret)\n}\n'
    ws = make_workspace(files={"main.tf": leak}, upstream_path=upstream)
    services.set_variable(
        ws,
        actor=Actor(user=alice),
        key="API_TOKEN",
        value="env-Secret-777",
        category="env",
        sensitive=True,
    )
    env, secrets = runner.build_env(ws, ws_root / "x")
    assert env["API_TOKEN"] == "env-Secret-777" and env["TF_VAR_name"] == "world"
    assert set(secrets) == {SECRET, "env-Secret-777"}
    assert env["TF_IN_AUTOMATION"] == "1" and env["CHECKPOINT_DISABLE"] == "1"
    run = apply(plan(ws, alice), alice)
    assert run.status == RunStatus.APPLIED, run.error
    leak_out = next(o for o in run.summary["outputs"] if o["name"] == "leak")
    assert leak_out["after"] == '"***"'
    ws.refresh_from_db()
    assert ws.outputs["leak"]["value"] == "***"
    text = log_text(run)
    assert 'leak = "***"' in text and SECRET not in text


def test_force_unlock_api_answers_the_unlocked_workspace(
    ws_root, make_workspace, upstream, alice, admin_user
):
    ws = make_workspace(upstream_path=upstream)
    held = plan(ws, alice)
    assert held.status == RunStatus.PLANNED  # the plan holds the lock until applied
    resp = client_for(admin_user).post(f"/api/v1/workspaces/{ws.slug}/force-unlock")
    assert resp.status_code == 200, resp.content
    assert resp.json()["slug"] == ws.slug and resp.json()["lock"] is None
    event = AuditEvent.objects.get(action="infra.workspace.force_unlock")
    assert event.squad_id == ws.owner_id
    assert event.data == {"run": held.pk, "number": held.number, "run_status": "planned"}
    planned = AuditEvent.objects.get(action="infra.run.plan")  # a run's event names its workspace
    assert planned.data == {"workspace": ws.slug, "number": held.number, "message": held.message}
    assert planned.squad_id == ws.owner_id
