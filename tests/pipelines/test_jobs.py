"""``jobs:`` pipelines (issue 18): the needs DAG and matrix in the spec, and runs on a real
Celery worker with three processes, real git and real (sandboxed) steps."""

import http.server
import json
import threading

import pytest

from pipelines import services
from pipelines.jobspec import MAX_MATRIX
from pipelines.models import JobLogChunk, JobRun, LogChunk, PipelineRun, RunStatus
from pipelines.spec import SpecError, parse
from portal.actors import Actor
from tests.conftest import WorkerProcess, client_for
from tests.pipelines.conftest import wait_for

DAG = """\
jobs:
  lint:
    steps: [{run: "echo lint"}]
  test:
    needs: [lint]
    matrix:
      python: ["3.11", "3.12"]
      db: [pg, sqlite]
      exclude: [{python: "3.11", db: sqlite}]
      include: [{python: "3.13", db: pg}]
    env: {SUITE: unit}
    steps: [{name: t, run: "echo py=$MATRIX_PYTHON db=$MATRIX_DB suite=$SUITE"}]
  package:
    needs: test
    steps: [{run: "echo package"}]
"""


def test_matrix_expands_with_include_exclude_and_env():
    spec = parse(DAG)
    names = [j["name"] for j in spec.data["jobs"]]
    assert names == [
        "lint",
        "test (3.11, pg)",
        "test (3.12, pg)",
        "test (3.12, sqlite)",
        "test (3.13, pg)",
        "package",
    ]
    test_job = spec.data["jobs"][1]
    assert test_job["needs"] == ["lint"]
    assert test_job["steps"][0]["env"] == {
        "SUITE": "unit",
        "MATRIX_PYTHON": "3.11",
        "MATRIX_DB": "pg",
    }
    assert spec.data["jobs"][-1]["needs"] == names[1:5]  # a need on a matrix: every combination
    assert [s["name"] for s in spec.stages] == names  # every reader of stages sees the jobs


@pytest.mark.parametrize(
    "text, line, field, words",
    [
        (
            "jobs:\n  a:\n    needs: [b]\n    steps: [{run: x}]\n  b:\n    needs: [c]\n"
            "    steps: [{run: x}]\n  c:\n    needs: [a]\n    steps: [{run: x}]\n",
            3,
            "jobs.a.needs[0]",
            "cyclic needs: a → b → c → a",
        ),
        ("jobs:\n  a:\n    needs: [zz]\n    steps: [{run: x}]\n", 3, "jobs.a.needs[0]", "'zz'"),
        ("jobs:\n  a:\n    needs: a\n    steps: [{run: x}]\n", 3, "jobs.a.needs[0]", "itself"),
        (
            "jobs:\n  a:\n    matrix: {x: [1,2,3,4,5,6], y: [1,2,3,4,5,6]}\n    steps: [{run: x}]\n",
            3,
            "jobs.a.matrix",
            f"36 combinations; a matrix has at most {MAX_MATRIX}",
        ),
        (
            "jobs:\n  a:\n    matrix: {x: [1], exclude: [{x: 1}]}\n    steps: [{run: x}]\n",
            3,
            "jobs.a.matrix",
            "no combination",
        ),
        ("jobs:\n  a:\n    matrix: {x: 1}\n    steps: [{run: x}]\n", 3, "jobs.a.matrix.x", "list"),
        ("jobs:\n  a: {steps: [{run: x}]}\nstages: []\n", 3, "stages", "not both"),
        ("jobs:\n  a:\n    neds: [b]\n    steps: [{run: x}]\n", 3, "jobs.a.neds", "unknown key"),
        ("jobs:\n  a:\n    needs: [b]\n", 3, "jobs.a.steps", "required"),
    ],
)
def test_bad_jobs_are_errors_with_line_and_field(text, line, field, words):
    with pytest.raises(SpecError) as exc:
        parse(text)
    assert exc.value.line == line, exc.value
    assert exc.value.field == field, exc.value
    assert words in exc.value.message


def test_stages_form_still_parses():
    spec = parse("stages: [{name: b, steps: [{name: s, run: 'true'}]}]")
    assert "jobs" not in spec.data and spec.stages[0]["name"] == "b"


class Barrier(http.server.ThreadingHTTPServer):
    """Steps call /arrive/<n>; the answer is 'go' once ``parties`` have arrived: a job that
    runs alone never gets it (it would if the jobs ran one after another)."""

    def __init__(self, parties):
        self.parties, self.arrived, self.lock = parties, set(), threading.Lock()
        super().__init__(("127.0.0.1", 0), BarrierHandler)


class BarrierHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with self.server.lock:
            self.server.arrived.add(self.path)
            go = len(self.server.arrived) >= self.server.parties
        body = b"go" if go else b"wait"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


WAIT = (
    'python3 -c "import sys,time,urllib.request as u\n'
    "for _ in range(600):\n"
    "    if u.urlopen('http://127.0.0.1:{port}/arrive/'+sys.argv[1]).read()==b'go': break\n"
    "    time.sleep(0.1)\n"
    "else: sys.exit('barrier not reached')\" $MATRIX_N"
)


def _log(model, owner):
    rows = model.objects.filter(run=owner).order_by("offset").values_list("text", flat=True)
    return "".join(rows)


@pytest.mark.django_db(transaction=True)
def test_jobs_run_in_parallel_on_a_real_worker(service, git_repo, squad, alice, settings):
    # the barrier listens on the host's loopback: the steps need `network: host`, which only an
    # installation setting allows (here and in the worker)
    settings.SANDBOX_HOST_NETWORK = True
    barrier = Barrier(3)
    threading.Thread(target=barrier.serve_forever, daemon=True).start()
    wait = WAIT.format(port=barrier.server_address[1])
    git_repo.commit(
        {
            "backline.yml": (
                "jobs:\n"
                "  setup: {steps: [{run: 'echo ready > out.txt'}]}\n"
                "  fan:\n"
                "    needs: [setup]\n"
                "    matrix: {n: [a, b, c]}\n"
                "    steps:\n"
                f"      - {{name: meet, network: host, run: {json.dumps(wait)}}}\n"
                "      - {name: show, run: 'echo matrix-n=$MATRIX_N; test $MATRIX_N != c'}\n"
                "  after: {needs: [fan], steps: [{run: 'echo never'}]}\n"
                "  alone: {steps: [{run: 'echo independent'}]}\n"
            )
        },
        "jobs",
    )
    worker = WorkerProcess(concurrency=3, env={"BACKLINE_SANDBOX_HOST_NETWORK": "1"}).start()
    try:
        run, _ = services.trigger_run(service, actor=Actor.system("test"), ref="main")
        done = wait_for(
            lambda: PipelineRun.objects.filter(pk=run.pk, finished_at__isnull=False).first(),
            180,
            what="the jobs run to finish",
        )
    finally:
        worker.stop()
        barrier.shutdown()
    jobs = {j.name: j for j in JobRun.objects.filter(run=run)}
    status = {name: j.status for name, j in jobs.items()}
    assert status == {
        "setup": "succeeded",
        "fan (a)": "succeeded",
        "fan (b)": "succeeded",
        "fan (c)": "failed",  # its second step: test c != c
        "after": "skipped",  # a need failed
        "alone": "succeeded",
    }, done.error
    assert barrier.arrived == {"/arrive/a", "/arrive/b", "/arrive/c"}  # all three at once
    assert done.status == RunStatus.FAILED
    assert "Job fan (c) failed" in done.error
    assert "needs fan (c), which failed" in jobs["after"].error
    for n in "abc":
        assert f"matrix-n={n}\n" in _log(JobLogChunk, jobs[f"fan ({n})"])
    assert len({j.worker for j in jobs.values() if j.worker}) >= 1
    runlog = _log(LogChunk, run)
    assert "6 jobs" in runlog and "job after skipped" in runlog and "pipeline failed" in runlog
    api = client_for(alice)
    fan_a = jobs["fan (a)"]
    page = api.get(f"/pipelines/runs/{run.pk}/jobs/{fan_a.index}/log").content.decode()
    assert "matrix-n=a" in page and "job fan (a)" in page
    body = api.get(f"/api/v1/runs/{run.pk}/jobs/{fan_a.index}/log").json()
    assert body["complete"] and "matrix-n=a" in body["text"] and "matrix-n=b" not in body["text"]
    graph = api.get(f"/pipelines/runs/{run.pk}/").content.decode()
    assert f'href="/pipelines/runs/{run.pk}/jobs/{fan_a.index}/log"' in graph
    assert 'data-job="after" data-status="skipped"' in graph
    detail = api.get(f"/api/v1/runs/{run.pk}").json()
    assert [j["status"] for j in detail["jobs"]].count("succeeded") == 4
    step = jobs["fan (a)"].steps.get(name="show")
    page = services.step_log_page(step, 0, limit=10000)
    assert "matrix-n=a" in page["text"] and "matrix-n=b" not in page["text"]
    assert page["complete"]


@pytest.mark.django_db
def test_a_lost_job_skips_its_dependents_and_fails_the_run(service, settings):
    """No worker: the run's rows as a worker would leave them when one job's worker died."""
    from datetime import timedelta

    from django.utils import timezone

    from pipelines import dag
    from pipelines.models import JobStatus, StepRun

    run, _ = services.trigger_run(service, actor=Actor.system("test"), ref="main")
    spec = parse("jobs:\n  a: {steps: [{run: x}]}\n  b: {needs: [a], steps: [{run: y}]}\n")
    PipelineRun.objects.filter(pk=run.pk).update(status="running", spec=spec.data)
    run.refresh_from_db()

    class Log:
        def write(self, text):
            pass

    dag.start_jobs(run, spec, Log())
    a, b = JobRun.objects.filter(run=run).order_by("index")
    assert a.heartbeat_at is not None and b.heartbeat_at is None  # a sent, b waits
    stale = timezone.now() - timedelta(seconds=120)
    JobRun.objects.filter(pk=a.pk).update(status="running", heartbeat_at=stale, worker="w1")
    assert services.reap_lost(30) == []  # a jobs run lives while its jobs do
    assert dag.reap_lost_jobs(30) == [a.pk]
    a.refresh_from_db(), b.refresh_from_db(), run.refresh_from_db()
    assert (a.status, b.status) == (JobStatus.LOST, JobStatus.SKIPPED)
    assert run.status == RunStatus.FAILED and "Job a lost" in run.error
    assert not StepRun.objects.filter(run=run, status__in=["queued", "running"]).exists()


@pytest.mark.django_db(transaction=True)
def test_cancel_stops_running_jobs_and_the_waiting_ones(service, git_repo, squad, make_token):
    from tests.conftest import token_client

    git_repo.commit(
        {
            "backline.yml": "jobs:\n"
            "  slow: {steps: [{name: s, run: 'echo sleeping; sleep 120'}]}\n"
            "  later: {needs: [slow], steps: [{run: 'echo never'}]}\n"
        },
        "slow",
    )
    worker = WorkerProcess(concurrency=2).start()
    try:
        run, _ = services.trigger_run(service, actor=Actor.system("test"), ref="main")
        wait_for(
            lambda: JobLogChunk.objects.filter(run__run=run, text__contains="sleeping\n").exists(),
            120,
            what="the slow job to run",
        )
        client = token_client(make_token(squad, ["pipelines:run"]))
        assert client.post(f"/api/v1/runs/{run.pk}/cancel").status_code == 202
        done = wait_for(
            lambda: PipelineRun.objects.filter(pk=run.pk, finished_at__isnull=False).first(),
            60,
            what="the canceled run to finish",
        )
    finally:
        worker.stop()
    status = dict(JobRun.objects.filter(run=run).values_list("name", "status"))
    assert done.status == RunStatus.CANCELED, done.error
    assert status == {"slow": "canceled", "later": "canceled"}
