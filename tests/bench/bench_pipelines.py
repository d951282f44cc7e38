"""Pipelines: webhook → first log line, per-step overhead, 200 queued runs, 100 MB of output.

Runs against a throw-away database (``bench_backline_pipelines``) and real Celery workers
(``celery -A portal worker`` subprocesses), with a real git repository in a temporary folder.
"""

import hashlib
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
from django.db import connection
from django.test import Client

N_LATENCY = 20
N_STEPS = 20
N_DRAIN = 200
BIG_BYTES = 100 * 2**20
BIG_LINE = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-backline-100MB-output-check-line!!"


def _git(path, *args):
    return subprocess.run(
        ["git", *args], cwd=path, check=True, capture_output=True, text=True
    ).stdout.strip()


def _repo(root: Path, spec: str) -> tuple[Path, str]:
    root.mkdir(parents=True, exist_ok=True)
    _git(root, "init", "-q", "-b", "main")
    _git(root, "config", "user.email", "bench@example.com")
    _git(root, "config", "user.name", "Bench")
    (root / "backline.yml").write_text(spec)
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "bench")
    return root, _git(root, "rev-parse", "HEAD")


def _wait(predicate, timeout, interval=0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError("benchmark condition not reached in time")


def _rss_tree(pid):
    try:
        proc = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])
    except psutil.NoSuchProcess:
        return 0


def _celery_rss(worker):
    """RSS of the worker's own Python processes (main + pool), not the step subprocesses."""
    total = 0
    try:
        main = psutil.Process(worker.proc.pid)
        for p in [main, *main.children()]:
            total += p.memory_info().rss
    except psutil.NoSuchProcess:
        pass
    return total


def sandbox_cost(workdir: Path) -> tuple[float, float, float]:
    """Seconds per ``/bin/true`` step through the executor, bare, in the sandbox (chown of a
    small checkout, prlimit, bwrap with its namespaces, setpriv; ``network: none``) and in the
    sandbox with its default ``isolated`` network (slirp4netns, the host's addresses blocked),
    in turn to share noise."""
    from portal.executor import run_process
    from portal.sandbox import Policy

    workdir.mkdir(parents=True, exist_ok=True)
    for i in range(50):  # a small checkout for prepare() to walk
        (workdir / f"f{i}.txt").write_text("x")
    times = {"bare": 0.0, "boxed": 0.0, "isolated": 0.0}
    policies = {
        "bare": lambda: None,
        "boxed": lambda: Policy(rw=[workdir], network="none"),
        "isolated": lambda: Policy(rw=[workdir]),
    }
    for i in range(3 * N_STEPS + 3):
        kind = ("bare", "boxed", "isolated")[i % 3]
        t0 = time.monotonic()
        res = run_process(
            ["/bin/sh", "-c", "/bin/true"],
            cwd=workdir,
            env={"PATH": "/usr/bin:/bin"},
            timeout=30,
            secrets=[],
            on_output=lambda _text: None,
            sandbox=policies[kind](),
        )
        assert res.exit_code == 0, res
        if i >= 3:  # one warm-up of each
            times[kind] += time.monotonic() - t0
    return times["bare"] / N_STEPS, times["boxed"] / N_STEPS, times["isolated"] / N_STEPS


def run(report):
    from pipelines.models import LogChunk, PipelineRun, RunStatus, StepRun
    from portal.inbound import signature_for
    from squads.models import Service, Squad, Tribe
    from tests.conftest import WorkerProcess

    settings_dict = connection.settings_dict
    old_name = settings_dict["NAME"]
    settings_dict.setdefault("TEST", {})["NAME"] = "bench_backline_pipelines"
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False, serialize=False)
    tmp = Path(tempfile.mkdtemp(prefix="bench-pipelines-"))
    try:
        tribe = Tribe.objects.create(slug="bench", name="Bench")
        squad = Squad.objects.create(slug="bench", name="Bench", tribe=tribe)

        def service(slug, spec):
            path, sha = _repo(tmp / slug, spec)
            svc = Service.objects.create(
                slug=slug,
                name=slug,
                owner=squad,
                repository_url=f"file://{path}",
                webhook_secret="bench-secret",
            )
            return svc, path, sha

        def over(run_id):
            return (
                PipelineRun.objects.filter(pk=run_id)
                .exclude(status__in=[RunStatus.QUEUED, RunStatus.RUNNING])
                .first()
            )

        worker = WorkerProcess(concurrency=2).start()
        try:
            # 1. webhook → first log line of the step, idle worker -------------------------------
            svc, path, sha = service(
                "latency", 'stages: [{name: b, steps: [{name: s, run: "echo first-line-marker"}]}]'
            )
            client = Client()
            samples = []
            for i in range(N_LATENCY + 2):
                payload = {
                    "ref": "refs/heads/main",
                    "after": sha,
                    "deleted": False,
                    "repository": {"clone_url": svc.repository_url, "full_name": "bench/latency"},
                    "head_commit": {"message": "bench"},
                    "sender": {"login": "bench"},
                }
                body = json.dumps(payload).encode()
                t0 = time.monotonic()
                resp = client.post(
                    "/hooks/github",
                    data=body,
                    content_type="application/json",
                    HTTP_X_GITHUB_EVENT="push",
                    HTTP_X_GITHUB_DELIVERY=f"lat-{i}",
                    HTTP_X_HUB_SIGNATURE_256=signature_for("bench-secret", body),
                )
                assert resp.status_code == 202, resp.content
                run_id = resp.json()["run_id"]
                _wait(
                    lambda run_id=run_id: (
                        LogChunk.objects.filter(run_id=run_id, text__contains="first-line-marker\n")
                        .exclude(text__contains="echo")
                        .exists()
                    ),
                    30,
                    0.005,
                )
                if i >= 2:  # the first two warm up the worker's connections and the git cache
                    samples.append(time.monotonic() - t0)
                _wait(lambda run_id=run_id: over(run_id), 30)
            from tests.bench.harness import p95

            p = p95(samples)
            report.add(
                "pipelines: webhook → first log line p95 (idle worker)",
                p * 1000,
                "ms",
                target="≤ 1000 ms",
                ok=p <= 1.0,
                note=f"{len(samples)} pushes; median {sorted(samples)[len(samples) // 2] * 1000:.0f} ms",
            )

            # 2. per-step overhead vs subprocess.run of the same command ----------------------------
            steps = "\n".join(f"      - name: s{i}\n        run: /bin/true" for i in range(N_STEPS))
            # network: none (the isolated network's own cost is the figure below)
            spec = f"network: none\nstages:\n  - name: b\n    steps:\n{steps}\n"
            svc2, _, _ = service("overhead", spec)
            from pipelines import services
            from portal.actors import Actor

            run, _ = services.trigger_run(svc2, actor=Actor.system("bench"), ref="main")
            done = _wait(lambda: over(run.pk), 60)
            assert done.status == RunStatus.SUCCEEDED, done.error
            rows = list(StepRun.objects.filter(run=run).order_by("index"))
            per_step = (rows[-1].finished_at - rows[0].started_at).total_seconds() / len(rows)
            t0 = time.monotonic()
            for _ in range(N_STEPS):
                subprocess.run(["/bin/sh", "-c", "/bin/true"], check=True)
            baseline = (time.monotonic() - t0) / N_STEPS
            overhead = per_step - baseline
            report.add(
                "pipelines: per-step overhead vs subprocess.run",
                overhead * 1000,
                "ms",
                baseline=baseline * 1000,
                baseline_label="subprocess.run of the same command",
                target="≤ 50 ms",
                ok=overhead <= 0.05,
                note=f"{N_STEPS} steps; {per_step * 1000:.1f} ms per step in the pipeline",
            )

            # 2b. what the sandbox adds to a step, against the bare command in the same run -------
            bare, boxed, isolated = sandbox_cost(tmp / "sandbox-cost")
            report.add(
                "pipelines: sandbox cost per step (bubblewrap + limits)",
                (boxed - bare) * 1000,
                "ms",
                baseline=bare * 1000,
                baseline_label="the same step unsandboxed (run_process, no policy)",
                target="≤ 50 ms",
                ok=boxed - bare <= 0.05,
                note=f"{N_STEPS} steps each; {boxed * 1000:.1f} ms per sandboxed step",
            )
            report.add(
                "pipelines: isolated network cost per step (slirp4netns, host blocked)",
                (isolated - boxed) * 1000,
                "ms",
                baseline=boxed * 1000,
                baseline_label="the same sandboxed step with network: none",
                target="≤ 150 ms",
                ok=isolated - boxed <= 0.15,
                note=f"{N_STEPS} steps each; {isolated * 1000:.1f} ms per isolated step",
            )

            # 3. 200 queued runs drained, none lost ---------------------------------------------
            svc3, _, _ = service(
                "drain", 'stages: [{name: b, steps: [{name: s, run: "echo drained"}]}]'
            )
            t0 = time.monotonic()
            ids = [
                services.trigger_run(svc3, actor=Actor.system("bench"), ref="main")[0].pk
                for _ in range(N_DRAIN)
            ]
            queued_in = time.monotonic() - t0

            def drained():
                return not PipelineRun.objects.filter(
                    pk__in=ids, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]
                ).exists()

            _wait(drained, 240, 0.2)
            elapsed = time.monotonic() - t0
            ok_runs = PipelineRun.objects.filter(pk__in=ids, status=RunStatus.SUCCEEDED).count()
            report.add(
                f"pipelines: {N_DRAIN} queued runs drained (2 worker processes)",
                ok_runs,
                "runs",
                target=f"{N_DRAIN} succeeded, 0 lost",
                ok=ok_runs == N_DRAIN,
                note=f"drained in {elapsed:.1f}s ({N_DRAIN / elapsed:.1f} runs/s); queued in {queued_in:.1f}s",
            )
            report.add(
                "pipelines: queue drain throughput",
                N_DRAIN / elapsed,
                "runs/s",
                note=f"{N_DRAIN} runs, git fetch + checkout + one step each",
            )
        finally:
            worker.stop()

        # 4. 100 MB of output captured intact; worker memory growth --------------------------------
        os.environ["PIPELINES_MAX_STEP_LOG_BYTES"] = str(BIG_BYTES * 2)
        worker = WorkerProcess(concurrency=1).start()
        try:
            cmd = f"yes '{BIG_LINE}' | head -c {BIG_BYTES}"
            svc4, _, _ = service(
                "bigout", f"stages: [{{name: b, steps: [{{name: big, run: {json.dumps(cmd)}}}]}}]"
            )
            # warm up the pool process (imports, connections, git) before the baseline
            from pipelines import services
            from portal.actors import Actor

            warmup, _ = services.trigger_run(svc, actor=Actor.system("bench"), ref="main")
            _wait(lambda: over(warmup.pk), 60)
            time.sleep(0.5)
            base_rss = _celery_rss(worker)
            peak = base_rss
            warm, _ = services.trigger_run(svc4, actor=Actor.system("bench"), ref="main")
            t0 = time.monotonic()
            while not over(warm.pk):
                peak = max(peak, _celery_rss(worker))
                time.sleep(0.1)
                if time.monotonic() - t0 > 240:
                    raise TimeoutError("100 MB run did not finish in 240 s")
            elapsed = time.monotonic() - t0
            done = over(warm.pk)
            step = StepRun.objects.get(run=warm)
            chunks = LogChunk.objects.filter(run=warm, offset__gte=step.log_offset).order_by(
                "offset"
            )
            texts = chunks.values_list("text", flat=True).iterator(chunk_size=100)
            h = hashlib.sha256()
            size = 0
            pending = []
            for i, text in enumerate(texts):
                if i < 2:
                    continue  # the step header and its command line
                pending.append(text)
                if len(pending) > 2:
                    data = pending.pop(0).encode()
                    h.update(data)
                    size += len(data)
            # the last two chunks are the step's and the pipeline's result lines
            line = (BIG_LINE + "\n").encode()
            expected = hashlib.sha256()
            full, rest = divmod(BIG_BYTES, len(line))
            block = line * 1000
            for _ in range(full // 1000):
                expected.update(block)
            expected.update(line * (full % 1000) + line[:rest])
            intact = size == BIG_BYTES and h.hexdigest() == expected.hexdigest()
            growth = (peak - base_rss) / 2**20
            report.add(
                "pipelines: 100 MB step output captured intact",
                size / 2**20,
                "MiB",
                target="100 MiB, same SHA-256",
                ok=intact and done.status == RunStatus.SUCCEEDED,
                note=f"in {elapsed:.1f}s ({BIG_BYTES / 2**20 / elapsed:.0f} MiB/s); {LogChunk.objects.filter(run=warm).count()} chunks",
            )
            report.add(
                "pipelines: worker memory growth while capturing 100 MB",
                growth,
                "MiB",
                baseline=base_rss / 2**20,
                baseline_label="worker RSS before",
                target="< 100 MiB",
                ok=growth < 100,
            )
        finally:
            worker.stop()
            os.environ.pop("PIPELINES_MAX_STEP_LOG_BYTES", None)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        subprocess.run(["rm", "-rf", str(tmp)], check=False)


__all__ = ["run", "_rss_tree"]
