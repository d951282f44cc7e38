"""Parallel jobs (issue 18): a matrix of 6 jobs on 3 worker processes against the same 6 jobs
in sequence (each needing the one before), real Celery workers, real git, sandboxed steps.

The jobs sleep 4, 2, 2, 1, 1, 1 seconds: in sequence that is 11 s plus six times the per-job
overhead (checkout, claim); on 3 processes the slowest job (4 s) bounds the run, the others
fit beside it."""

import subprocess
import tempfile
from pathlib import Path

from django.db import connection

from tests.bench.bench_pipelines import _repo, _wait

SLEEPS = [4, 2, 2, 1, 1, 1]
PARALLEL = (
    "jobs:\n  work:\n    matrix: {s: ["
    + ", ".join(f'"{n}.{i}"' for i, n in enumerate(SLEEPS))
    + "]}\n"
    '    steps: [{name: sleep, run: "sleep ${MATRIX_S%.*}"}]\n'
)
SEQUENCE = "jobs:\n" + "".join(
    f"  j{i}:\n"
    + (f"    needs: [j{i - 1}]\n" if i else "")
    + f'    steps: [{{name: sleep, run: "sleep {n}"}}]\n'
    for i, n in enumerate(SLEEPS)
)


def _elapsed(service):
    from pipelines import services
    from pipelines.models import JobRun, PipelineRun, RunStatus
    from portal.actors import Actor

    run, _ = services.trigger_run(service, actor=Actor.system("bench"), ref="main")
    done = _wait(
        lambda: PipelineRun.objects.filter(pk=run.pk, finished_at__isnull=False).first(), 300, 0.05
    )
    assert done.status == RunStatus.SUCCEEDED, done.error
    assert JobRun.objects.filter(run=run, status="succeeded").count() == len(SLEEPS)
    return (done.finished_at - done.created_at).total_seconds()


def run(report):
    from squads.models import Service, Squad, Tribe
    from tests.conftest import WorkerProcess

    old_name = connection.settings_dict["NAME"]
    connection.settings_dict.setdefault("TEST", {})["NAME"] = "bench_backline_jobs"
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False, serialize=False)
    tmp = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    try:
        tribe = Tribe.objects.create(slug="bench", name="Bench")
        squad = Squad.objects.create(slug="bench", name="Bench", tribe=tribe)
        svcs = {}
        for slug, spec in (("parallel", PARALLEL), ("sequence", SEQUENCE)):
            path, _sha = _repo(tmp / slug, spec)
            svcs[slug] = Service.objects.create(
                slug=slug, name=slug, owner=squad, repository_url=f"file://{path}"
            )
        worker = WorkerProcess(concurrency=3).start()
        try:
            _elapsed(svcs["parallel"])  # warm up: pool processes, connections, git caches
            _elapsed(svcs["sequence"])
            par = min(_elapsed(svcs["parallel"]) for _ in range(2))
            seq = _elapsed(svcs["sequence"])
        finally:
            worker.stop()
        slowest, total = max(SLEEPS), sum(SLEEPS)
        report.add(
            "pipelines: matrix of 6 jobs on 3 worker processes (queued → finished)",
            par,
            "s",
            baseline=seq,
            baseline_label="the same 6 jobs in sequence (each needs the one before)",
            target=f"about the slowest job ({slowest} s), not the sum ({total} s)",
            ok=par < (slowest + total) / 2 and par < seq / 1.6,
            note=f"jobs sleep {SLEEPS} s; per-job overhead in sequence "
            f"{(seq - total) / len(SLEEPS):.2f} s",
        )
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        subprocess.run(["rm", "-rf", str(tmp)], check=False)


__all__ = ["run"]
