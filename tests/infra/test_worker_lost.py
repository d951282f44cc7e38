"""A worker SIGKILLed mid-plan: the heartbeat reaper marks the run errored (lost) and the lock
passes to the next queued run — never stuck."""

import os
import signal
import time

import pytest

from infra import services
from infra.models import RunStatus, TerraformRun, Workspace
from portal.actors import Actor
from portal.models import AuditEvent
from tests.conftest import WorkerProcess
from tests.infra.conftest import published
from tests.infra.test_worker import terraform_pids, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


@pytest.fixture
def doomed_worker(settings, tmp_path, monkeypatch):
    root = tmp_path / "workspaces"
    monkeypatch.setenv("BACKLINE_WORKSPACE_ROOT", str(root))
    settings.WORKSPACE_ROOT = root
    worker = WorkerProcess(concurrency=1).start()
    yield worker
    worker.stop()


def test_worker_killed_mid_plan_is_reaped(doomed_worker, make_workspace, alice, tmp_path):
    fifo = published("blocked.tfstate")
    os.mkfifo(fifo)
    ws = make_workspace(slug="doomed", upstream_path=fifo)
    run = services.queue_run(ws, actor=Actor(user=alice))
    waiting = services.queue_run(ws, actor=Actor(user=alice))
    pids = wait_for(lambda: terraform_pids(run), 30, "terraform plan to start")
    assert TerraformRun.objects.get(pk=run.pk).status == RunStatus.PLANNING
    doomed_worker.kill()
    for pid in pids:  # terraform ran in its own session; end the orphan we started, by pid
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    # heartbeats are fresh for a while: a reaper with the default staleness leaves it alone
    assert services.reap_lost_runs() == 0
    time.sleep(0.2)
    assert services.reap_lost_runs(stale_seconds=0.1) == 1
    run.refresh_from_db()
    assert run.status == RunStatus.ERRORED and run.lost
    assert run.error.startswith("Lost: the worker")
    ws.refresh_from_db()
    assert ws.lock_run_id == waiting.pk  # the next queued run holds the lock now
    assert AuditEvent.objects.filter(action="infra.run.lost", target_id=str(run.pk)).exists()
    # a redelivered task for the lost run does nothing
    from infra.runner import execute_plan

    assert execute_plan(run.pk) == "not claimed"
    assert Workspace.objects.get(pk=ws.pk).lock_run_id == waiting.pk
