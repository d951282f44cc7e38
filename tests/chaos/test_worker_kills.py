"""SIGKILL the Celery worker, again and again, while a pipeline step and a Terraform plan are
running on it: each run reaches a final state within 60 s of the kill (the beat reaper tasks,
with their staleness tuned for the test), keeps its log up to the kill, frees its workspace
lock, and a re-run succeeds."""

import os
import time

import pytest

from infra import services as infra_services
from infra import tasks as infra_tasks
from infra.models import RunStatus as TfStatus
from infra.models import TerraformRun, Variable, Workspace
from pipelines import services as pipe_services
from pipelines import tasks as pipe_tasks
from pipelines.models import LogChunk, PipelineRun, RunStatus
from tests.chaos.conftest import ROUNDS, marked_pids, record, wait_for
from tests.conftest import WorkerProcess
from tests.infra.conftest import published
from tests.infra.test_worker import terraform_pids

pytestmark = [pytest.mark.chaos, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _spec(i, marker):
    # victims are the odd-numbered runs (round i: the re-run of round i-1's victim, then the
    # new victim); a flag file of this test's folder would not be visible inside the sandbox
    return (
        "stages:\n  - name: main\n    steps:\n      - name: victim\n"
        f'        run: "echo before-kill-{i}; if [ $((BACKLINE_RUN_NUMBER % 2)) = 1 ]; '
        f'then sleep 300; fi; echo after-{i} # {marker}"\n'
    )


def _pipeline_log(run):
    return "".join(
        LogChunk.objects.filter(run=run).order_by("offset").values_list("text", flat=True)
    )


def _tf_log(run):
    return "".join(run.log_chunks.order_by("offset").values_list("text", flat=True))


def _start_victims(ctx, repo, i):
    """A pipeline step and a Terraform plan surely in flight (the step sleeps in an odd-numbered
    run; terraform blocks reading a FIFO as its upstream state)."""
    marker = f"chaos-marker-{os.getpid()}-{i}"
    repo.commit({"backline.yml": _spec(i, marker)}, f"round {i}")
    fifo = published(f"blocked-{i}.tfstate")
    os.mkfifo(fifo)
    Variable.objects.filter(pk=ctx["var"].pk).update(value=str(fifo))
    run, _ = pipe_services.trigger_run(ctx["service"], actor=ctx["actor"], ref="main")
    tf = infra_services.queue_run(Workspace.objects.get(pk=ctx["ws"].pk), actor=ctx["actor"])
    wait_for(lambda: f"before-kill-{i}" in _pipeline_log(run), 60, "the step's output")
    wait_for(lambda: terraform_pids(tf), 60, "terraform plan to start")
    wait_for(lambda: _tf_log(tf), 30, "terraform output")
    ctx["marker"] = marker
    return run, tf, (_pipeline_log(run), _tf_log(tf))


def _reap(ctx, run, tf, i):
    # the kernel ends the step's shell and terraform with the worker (PR_SET_PDEATHSIG): no
    # orphan keeps running the step or holding Terraform's state lock
    wait_for(
        lambda: not terraform_pids(tf) and not marked_pids(ctx["marker"]),
        10,
        f"terraform and the step of round {i} to die with the worker",
        interval=0.1,
    )

    def final():
        pipe_tasks.reap_lost_runs()  # the beat tasks, as beat calls them
        infra_tasks.reap_lost_runs()
        p = PipelineRun.objects.get(pk=run.pk)
        t = TerraformRun.objects.get(pk=tf.pk)
        return p.is_over and t.status == TfStatus.ERRORED and (p, t)

    return wait_for(final, 60, f"both runs of round {i} final after the kill", interval=0.5)


def _rerun_both(ctx, lost_run, upstream, i):
    Variable.objects.filter(pk=ctx["var"].pk).update(value=str(upstream))
    new = pipe_services.rerun_run(lost_run, actor=ctx["actor"])
    new_tf = infra_services.queue_run(Workspace.objects.get(pk=ctx["ws"].pk), actor=ctx["actor"])
    done = wait_for(
        lambda: PipelineRun.objects.get(pk=new.pk).is_over, 90, "pipeline re-run"
    ) and PipelineRun.objects.get(pk=new.pk)
    assert done.status == RunStatus.SUCCEEDED, (done.status, done.error)
    assert f"after-{i}" in _pipeline_log(done)
    final = (TfStatus.APPLIED, TfStatus.PLANNED_AND_FINISHED, TfStatus.ERRORED)
    wait_for(
        lambda: TerraformRun.objects.get(pk=new_tf.pk).status in final, 120, "terraform re-run"
    )
    tf_done = TerraformRun.objects.get(pk=new_tf.pk)
    assert tf_done.status in final[:2], (tf_done.status, tf_done.error)
    assert Workspace.objects.get(pk=ctx["ws"].pk).lock_run_id is None


def test_worker_sigkilled_during_pipeline_steps_and_terraform_runs(
    squad, tmp_path, monkeypatch, settings
):
    from portal.actors import Actor
    from tests.factories import ServiceFactory
    from tests.infra.conftest import CONFIG, terraform_binary, write_state
    from tests.pipelines.conftest import GitRepo

    # the test worker beats often; the beat tasks called below use short staleness
    monkeypatch.setenv("PIPELINES_HEARTBEAT_SECONDS", "0.5")
    monkeypatch.setenv("PIPELINES_LOST_AFTER_SECONDS", "3")
    settings.PIPELINES_LOST_AFTER_SECONDS = 3.0  # the reaper runs in this process too
    settings.HEARTBEAT_STALE_SECONDS = 8  # Terraform runs beat every 5 s
    root = tmp_path / "workspaces"
    monkeypatch.setenv("BACKLINE_WORKSPACE_ROOT", str(root))
    settings.WORKSPACE_ROOT = root
    actor = Actor.system("chaos")
    repo = GitRepo(tmp_path / "repo")
    repo.commit({"README.md": "chaos\n"}, "first")
    service = ServiceFactory(slug="chaos-svc", owner=squad, repository_url=repo.url)
    upstream = write_state(published("upstream.tfstate"), {"val": "one"})
    ws = Workspace.objects.create(
        slug="chaos-ws",
        name="Chaos",
        owner=squad,
        files={"main.tf": CONFIG},
        terraform_bin=terraform_binary(),
        auto_apply=True,
    )
    Variable.objects.create(workspace=ws, key="name", value="world")
    Variable.objects.create(workspace=ws, key="secret", value="s3cr3t", sensitive=True)
    upstream_var = Variable.objects.create(workspace=ws, key="upstream_state", value="")

    pending_reruns = []  # the previous round's lost pipeline runs
    reruns_ok = kill_to_final = 0
    worst = 0.0
    worker = None
    ctx = {"actor": actor, "service": service, "ws": ws, "var": upstream_var, "tmp": tmp_path}
    try:
        for i in range(ROUNDS + 1):
            worker = WorkerProcess(concurrency=2).start()
            for lost_run in pending_reruns:  # re-run the previous round's victims
                _rerun_both(ctx, lost_run, upstream, i - 1)
                reruns_ok += 1
            pending_reruns = []
            if i == ROUNDS:
                break
            run, tf, before = _start_victims(ctx, repo, i)
            worker.kill()
            killed_at = time.monotonic()
            worker = None
            p, t = _reap(ctx, run, tf, i)
            took = time.monotonic() - killed_at
            worst = max(worst, took)
            assert took < 60
            assert p.status == RunStatus.LOST and t.lost
            assert _pipeline_log(p).startswith(before[0]) and "before-kill" in before[0]
            assert _tf_log(t).startswith(before[1]) and before[1]
            assert Workspace.objects.get(pk=ws.pk).lock_run_id is None  # lock released
            kill_to_final += 1
            pending_reruns.append(p)
    finally:
        if worker is not None:
            worker.stop()
    stuck = PipelineRun.objects.filter(status__in=["queued", "running"]).count()
    stuck += TerraformRun.objects.filter(
        status__in=[TfStatus.PENDING, TfStatus.PLANNING, TfStatus.CONFIRMED, TfStatus.APPLYING]
    ).count()
    assert stuck == 0
    record(
        "SIGKILL worker mid pipeline step + mid terraform plan",
        ROUNDS,
        f"{kill_to_final * 2} runs final (lost/errored) within {worst:.1f}s max; "
        f"logs kept, lock freed; {reruns_ok * 2} re-runs succeeded",
        lost=stuck + (ROUNDS - reruns_ok) * 2,
    )
