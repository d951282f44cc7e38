"""With a real `celery -A portal worker -c 2`: cancel of a running plan (interrupt, then kill
the process group) and two auto-applies started at once on one workspace running one after
the other."""

import os
import time

import pytest

from infra import runner, services
from infra.models import RunStatus, TerraformRun, Workspace
from portal.actors import Actor
from tests.conftest import pids_with_cmdline
from tests.infra.conftest import CONFIG, log_text, published

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def wait_for(fn, timeout=30, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def status(run):
    return TerraformRun.objects.values_list("status", flat=True).get(pk=run.pk)


def terraform_pids(run) -> list[int]:
    """Processes whose command line names this run's plan file (unique per run)."""
    return pids_with_cmdline(str(runner.plan_file(run)))


def test_cancel_a_running_plan(worker_root, make_workspace, alice, tmp_path):
    # terraform_remote_state reading a FIFO: the plan blocks in the read until it is canceled
    fifo = published("blocked.tfstate")
    os.mkfifo(fifo)
    ws = make_workspace(slug="slow", upstream_path=fifo)
    run = services.queue_run(ws, actor=Actor(user=alice), message="will hang")
    wait_for(lambda: terraform_pids(run), 30, "terraform plan to start")
    time.sleep(0.5)  # now blocked reading the FIFO (nothing ever writes to it)
    assert status(run) == RunStatus.PLANNING
    services.cancel_run(run, actor=Actor(user=alice))
    wait_for(lambda: status(run) == RunStatus.CANCELED, 60, "the run to be canceled")
    # SIGTERM (terraform: "Interrupt received"), then SIGKILL of the process group after the
    # 2 s grace if it is still there. Whether terraform leaves the blocked read by itself
    # on the interrupt depends on timing, so what is asserted is that it is gone: the FIFO
    # is never written, so a terraform that was not killed would still be blocked in it.
    assert terraform_pids(run) == [], "terraform still running after cancel"
    text = log_text(TerraformRun.objects.get(pk=run.pk))
    assert (
        "Interrupt received" in text or "Stopping operation" in text or "$ terraform plan" in text
    )
    assert Workspace.objects.get(pk=ws.pk).lock_run_id is None


def test_two_applies_at_once_run_one_after_the_other(worker_root, make_workspace, alice):
    files = {"main.tf": CONFIG + '\noutput "at" {\n  value = timestamp()\n}\n'}
    upstream = published("up.tfstate")
    from tests.infra.conftest import write_state

    write_state(upstream, {"val": "one"})
    ws = make_workspace(slug="twice", files=files, upstream_path=upstream, auto_apply=True)
    actor = Actor(user=alice)
    first = services.queue_run(ws, actor=actor, message="one")
    second = services.queue_run(ws, actor=actor, message="two")
    assert second.status == RunStatus.PENDING
    wait_for(
        lambda: (
            TerraformRun.objects.filter(
                pk__in=[first.pk, second.pk], status=RunStatus.APPLIED
            ).count()
            == 2
        ),
        60,
        "both runs to be applied",
    )
    a, b = (TerraformRun.objects.get(pk=p) for p in (first.pk, second.pk))
    assert a.finished_at <= b.plan_started_at, (a.finished_at, b.plan_started_at)
    assert a.worker and b.worker
    ws.refresh_from_db()
    assert ws.lock_run_id is None and ws.outputs["at"]["value"]
    assert "Apply complete!" in log_text(a) and "Apply complete!" in log_text(b)
    # the second run planned against the state the first one wrote
    assert b.summary["outputs"][0]["name"] == "at" and b.summary["outputs"][0]["action"] == "update"


def test_two_people_click_apply_at_once_one_wins(worker_root, make_workspace, alice, admin_user):
    import threading

    from django.db import connection

    from portal.errors import Conflict

    upstream = published("up2.tfstate")
    from tests.infra.conftest import write_state

    write_state(upstream, {"val": "one"})
    ws = make_workspace(slug="race", upstream_path=upstream)
    run = services.queue_run(ws, actor=Actor(user=alice))
    wait_for(lambda: status(run) == RunStatus.PLANNED, 30, "the plan")
    results = []
    barrier = threading.Barrier(2)

    def click(user):
        try:
            barrier.wait()
            services.apply_run(TerraformRun.objects.get(pk=run.pk), actor=Actor(user=user))
            results.append("ok")
        except Conflict as exc:
            results.append(f"409 {exc.message}")
        finally:
            connection.close()

    threads = [threading.Thread(target=click, args=(u,)) for u in (alice, admin_user)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert sorted(results)[0].startswith("409") and sorted(results)[1] == "ok", results
    wait_for(lambda: status(run) == RunStatus.APPLIED, 30, "the apply")
    assert "Apply complete!" in log_text(TerraformRun.objects.get(pk=run.pk))
