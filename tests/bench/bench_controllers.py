"""Controllers at scale (issue 16): 10,000 active releases measuring canary analyses against the
builtin metrics store, 10,000 alert rules and 1,000 scrape targets (real HTTP ``/metrics``
endpoints, 1,000 ports served by one asyncio process) at a 15 s interval each, driven by beat
and 2 real Celery worker processes for a few intervals.

Per controller: the lag of due items (sampled every second from the database: how long the
oldest due item has been waiting), the duration of each beat dispatcher and of each batch task
(from the worker log), the items per tick, the items the batch tasks handled per second
against what the load needs, the batch tasks waiting in the broker and the workers' busy share.
A miss is a due-item lag over the controller's interval, or workers handling under 90 % of what
is needed (the claimed work then piles up in the broker, where the lag does not see it)."""

import ast
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

from django.db import connection

from tests.bench.harness import bench_db, p95

RELEASES = int(os.environ.get("BENCH_CTRL_RELEASES", 10_000))
RULES = int(os.environ.get("BENCH_CTRL_RULES", 10_000))
TARGETS = int(os.environ.get("BENCH_CTRL_TARGETS", 1_000))
SECONDS = float(os.environ.get("BENCH_CTRL_SECONDS", 75))
# how often each release takes an analysis measurement (Argo's templates say 1–5 min)
ANALYSIS_INTERVAL = float(os.environ.get("BENCH_CTRL_ANALYSIS_INTERVAL", 120))
TASK_LINE = re.compile(
    r"^([\d-]+ [\d:,]+) \w+ [\w.]+ Task ([\w.]+)\[[^\]]+\] succeeded in ([\d.]+)s: (.*)$"
)
# items each controller must handle per second
NEEDED = {
    "releases": RELEASES / ANALYSIS_INTERVAL,
    "alert rules": RULES / 15.0,
    "scrape targets": TARGETS / 15.0,
}
CONTROLLERS = {
    # name: (dispatcher task, batch task)
    "releases": ("releases.tasks.tick_releases", "releases.tasks.drive_releases"),
    "alert rules": (
        "monitoring.tasks.evaluate_alert_rules",
        "monitoring.tasks.evaluate_alert_batch",
    ),
    "scrape targets": ("monitoring.tasks.scrape_targets", "monitoring.tasks.scrape_shard"),
}


# --- the /metrics endpoints --------------------------------------------------------------------
def exposition(i: int, t: float) -> bytes:
    """Target ``i`` at ``t`` s after start: 10 req/s stable and 2 req/s canary, 1 % errors."""
    lines = ["# TYPE http_requests_total counter"]
    hist = ["# TYPE http_request_duration_seconds histogram"]
    for track, rate in (("stable", 10.0), ("canary", 2.0)):
        total = rate * t + i % 7
        lines.append(f'http_requests_total{{track="{track}",code="200"}} {total * 0.99:.3f}')
        lines.append(f'http_requests_total{{track="{track}",code="500"}} {total * 0.01:.3f}')
        for le, share in (("0.1", 0.6), ("0.5", 0.95), ("1.0", 0.99), ("+Inf", 1.0)):
            hist.append(
                f'http_request_duration_seconds_bucket{{track="{track}",le="{le}"}} '
                f"{total * share:.3f}"
            )
        hist.append(f'http_request_duration_seconds_count{{track="{track}"}} {total:.3f}')
        hist.append(f'http_request_duration_seconds_sum{{track="{track}"}} {total * 0.08:.3f}')
    return ("\n".join(lines + hist) + "\n").encode()


async def _serve(n: int):
    start = time.time()

    def handler(i):
        async def handle(reader, writer):
            try:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                body = exposition(i, time.time() - start)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                    + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
            finally:
                writer.close()

        return handle

    servers = [await asyncio.start_server(handler(i), "127.0.0.1", 0) for i in range(n)]
    print(json.dumps([s.sockets[0].getsockname()[1] for s in servers]), flush=True)
    await asyncio.Event().wait()


def start_endpoints(n):
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.bench_controllers", "serve", str(n)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    ports = json.loads(proc.stdout.readline())
    return proc, ports


# --- seeding ------------------------------------------------------------------------------------
def seed(ports):
    from django.utils import timezone

    from metrics.models import ScrapeTarget
    from monitoring.models import AlertRule
    from releases.analysis import resolve_metrics
    from releases.models import AnalysisRun, AnalysisTemplate, Environment, Release
    from squads.models import Service, Squad, Tribe

    now = timezone.now()
    tribe = Tribe.objects.create(slug="bench", name="Bench")
    squad = Squad.objects.create(slug="bench", name="Bench", tribe=tribe)
    services = Service.objects.bulk_create(
        [
            Service(
                slug=f"svc-{i}",
                name=f"Service {i}",
                owner=squad,
                lifecycle="production",
                metrics_urls=[f"http://127.0.0.1:{port}/metrics"],
            )
            for i, port in enumerate(ports)
        ]
    )
    interval = 15.0
    ScrapeTarget.objects.bulk_create(
        [  # spread over one interval, as Prometheus spreads its targets
            ScrapeTarget(
                service=s,
                url=s.metrics_urls[0],
                next_scrape_at=now + timedelta(seconds=interval * i / len(services)),
            )
            for i, s in enumerate(services)
        ]
    )
    per_service = -(-RELEASES // len(services))
    envs = Environment.objects.bulk_create(
        [Environment(name=f"env-{k}", order=k) for k in range(per_service)]
    )
    template = AnalysisTemplate.objects.create(
        name="bench",
        metrics=[
            {"name": "error-ratio", "kind": "error_ratio", "max": 0.05},
            {"name": "latency-p99", "kind": "p99", "max_ms": 1000},
        ],
    )
    step = {
        "template": "bench",
        "interval": ANALYSIS_INTERVAL,
        "count": 1000,
        "min_requests": 1,
        "inconclusive_limit": 1000,
        "consecutive_error_limit": 1000,
    }
    metrics = resolve_metrics(template, step)
    strategy = [{"set_weight": 20}, {"analysis": step}, {"set_weight": 100}]
    releases = []
    for k in range(RELEASES):
        due = now + timedelta(seconds=ANALYSIS_INTERVAL * k / RELEASES)
        releases.append(
            Release(
                service=services[k % len(services)],
                environment=envs[k // len(services)],
                version="2.0",
                strategy=strategy,
                status="progressing",
                step_index=1,
                weight=20,
                desired_weight=20,
                started_at=now,
                next_tick_at=due,
            )
        )
    releases = Release.objects.bulk_create(releases, batch_size=2000)
    AnalysisRun.objects.bulk_create(
        [
            AnalysisRun(
                release=r,
                generation=1,
                step_index=1,
                weight=20,
                template="bench",
                metrics=metrics,
                status="running",
                started_at=now - timedelta(seconds=ANALYSIS_INTERVAL),
                next_measure_at=r.next_tick_at,
            )
            for r in releases
        ],
        batch_size=2000,
    )
    signals = ("error_ratio", "request_rate", "p99", "p95", "p50")
    AlertRule.objects.bulk_create(
        [
            AlertRule(
                service=services[k % len(services)],
                name=f"rule {k}",
                signal=signals[k % len(signals)],
                track=("stable", "canary")[k // len(services) % 2],
                threshold=1e9,  # 1 in 100 fires (request rate > 0), the others stay quiet
                comparison=">",
                window_seconds=60,
                last_evaluated_at=now - timedelta(seconds=interval * (1 - k / RULES)),
            )
            for k in range(RULES)
        ],
        batch_size=2000,
    )
    ids = list(AlertRule.objects.order_by("pk").values_list("pk", flat=True))
    AlertRule.objects.filter(pk__in=ids[::100]).update(threshold=0)
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    return now


def shift(seeded):
    """Move every due time on by the time seeding and starting the workers took, so the
    measured run starts with nothing overdue."""
    from django.db.models import F
    from django.utils import timezone

    from metrics.models import ScrapeTarget
    from monitoring.models import AlertRule
    from releases.models import AnalysisRun, Release

    delta = timezone.now() - seeded
    Release.objects.update(next_tick_at=F("next_tick_at") + delta)
    AnalysisRun.objects.update(next_measure_at=F("next_measure_at") + delta)
    AlertRule.objects.update(last_evaluated_at=F("last_evaluated_at") + delta)
    ScrapeTarget.objects.update(next_scrape_at=F("next_scrape_at") + delta)
    connection.close()


# --- measuring ----------------------------------------------------------------------------------
def sample_lags(stop, out):
    """Every second: how long the oldest due item of each controller has been waiting, and
    the batch tasks waiting in the broker (claimed work not started yet)."""
    import redis
    from django.conf import settings
    from django.db.models import Min
    from django.utils import timezone

    from metrics.models import ScrapeTarget
    from monitoring import evaluation
    from portal.celery import DEFAULT_QUEUE
    from releases import controller

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        while not stop.wait(1.0):
            out["backlog"].append(broker.llen(DEFAULT_QUEUE))
            now = timezone.now()
            oldest = controller.due(now).aggregate(m=Min("next_tick_at"))["m"]
            out["releases"].append((now - oldest).total_seconds() if oldest else 0.0)
            oldest = evaluation.due(now).aggregate(m=Min("last_evaluated_at"))["m"]
            lag = (now - oldest).total_seconds() - evaluation.interval() if oldest else 0.0
            out["alert rules"].append(max(lag, 0.0))
            oldest = ScrapeTarget.objects.filter(next_scrape_at__lte=now).aggregate(
                m=Min("next_scrape_at")
            )["m"]
            out["scrape targets"].append((now - oldest).total_seconds() if oldest else 0.0)
    finally:
        connection.close()


def parse_log(text, since):
    """{task name: [(duration s, result text)]} of the tasks that finished after ``since``."""
    tasks: dict = {}
    for line in text.splitlines():
        m = TASK_LINE.match(line)
        if m and m.group(1) >= since:
            tasks.setdefault(m.group(2), []).append((float(m.group(3)), m.group(4)))
    return tasks


def _items(result: str) -> int:
    """Items a task handled: its int result, a scrape shard's targets, a rule batch's count."""
    try:
        got = ast.literal_eval(result)
    except (ValueError, SyntaxError):
        return 0
    if isinstance(got, dict):
        return got["targets"] if "targets" in got else sum(got.values())
    return got if isinstance(got, int) else 0


def _stats(xs):
    if not xs:
        return "none"
    return f"{statistics.median(xs):.2f}/{p95(xs):.2f}/{max(xs):.2f}"


def _report(report, name, tasks, lag, intervals, busy, backlog):
    """One controller's figures: the oldest due item's wait, and the items its batch tasks
    handled per second against what the load needs."""
    dispatcher, batch = CONTROLLERS[name]
    ticks = tasks.get(dispatcher, [])
    batches = [d for d, _ in tasks.get(batch, [])]
    items = [_items(r) for _, r in ticks]
    # by the batch tasks, and by the ticks that drove a handful themselves (releases: at most
    # DRIVE_HERE due)
    done = sum(_items(r) for _, r in tasks.get(batch, []))
    done += sum(n for n in items if name == "releases" and n <= 10)
    rate, needed = done / SECONDS, NEEDED[name]
    lag = lag or [0.0]  # (the first seconds, workers starting, are left out)
    interval, period = intervals
    limit = interval + period if name == "releases" else interval
    fig = report.add(
        f"controllers: {name}, oldest due item's wait (max over {SECONDS:.0f} s)",
        max(lag),
        "s",
        target=f"< {limit:g} s (interval {interval:g} s, beat claims every {period:g} s)",
        ok=max(lag) < limit and (not batches or p95(batches) < interval),
        note=f"lag p50/p95/max {_stats(lag)} s; dispatcher p50/p95/max "
        f"{_stats([d for d, _ in ticks])} s over {len(ticks)} ticks; batch task p50/p95/max "
        f"{_stats(batches)} s ({len(batches)} batches); items per tick p50/max "
        f"{statistics.median(items) if items else 0:g}/{max(items) if items else 0}, claimed "
        f"{sum(items) / SECONDS:.0f}/s; 2 workers busy {busy * 100:.0f} %",
    )
    print(f"    {fig.note}", flush=True)
    # the workers keep up, or the claimed work piles up in the broker (where the lag does
    # not see it)
    fig = report.add(
        f"controllers: {name} handled per second by 2 worker processes",
        rate,
        "/s",
        target=f">= 90 % of the {needed:.0f}/s needed",
        ok=rate >= 0.9 * needed,
        note=f"broker backlog (batch tasks waiting) max/end {max(backlog)}/{backlog[-1]}",
    )
    print(f"    handled {rate:.0f}/s of {needed:.0f}/s; {fig.note}", flush=True)


def run(report):
    from django.conf import settings

    from tests.conftest import WorkerProcess

    # (interval of a due item, how often beat claims): a due item waits at most one claim
    # period, then its batch runs, within the interval
    intervals = {
        "releases": (float(settings.RELEASES_TICK_SECONDS),) * 2,
        "alert rules": (
            float(settings.MONITORING_EVALUATION_INTERVAL),
            float(settings.MONITORING_DISPATCH_SECONDS),
        ),
        "scrape targets": (
            float(settings.MONITORING_SCRAPE_INTERVAL),
            float(settings.MONITORING_DISPATCH_SECONDS),
        ),
    }
    old_name = connection.settings_dict["NAME"]
    connection.settings_dict.setdefault("TEST", {})["NAME"] = bench_db("ctrl")
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False, serialize=False)
    endpoints, ports = start_endpoints(TARGETS)
    tmp = Path(tempfile.mkdtemp(prefix="bench-ctrl-"))
    try:
        t0 = time.monotonic()
        seeded = seed(ports)
        print(f"  seeded in {time.monotonic() - t0:.1f} s", flush=True)
        connection.close()
        args = ["-B", "-s", str(tmp / "beat-schedule")]
        worker = WorkerProcess(concurrency=2, extra_args=args, name="bench-ctrl")
        stop, lags = threading.Event(), {name: [] for name in [*CONTROLLERS, "backlog"]}
        shift(
            seeded
        )  # + the few seconds the workers take to start (their first seconds are skipped)
        worker.start()
        try:
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
            sampler = threading.Thread(target=sample_lags, args=(stop, lags), daemon=True)
            sampler.start()
            time.sleep(SECONDS)
        finally:
            stop.set()
            worker.stop()
        tasks = parse_log(worker.logfile.read_text(), since)
        busy = sum(d for runs in tasks.values() for d, _ in runs) / (2 * SECONDS)
        backlog = lags["backlog"] or [0]
        print(
            f"    broker backlog (batch tasks waiting) max {max(backlog)}, at the end {backlog[-1]}"
        )
        for name in CONTROLLERS:
            _report(report, name, tasks, lags[name][5:], intervals[name], busy, backlog)
    finally:
        os.killpg(endpoints.pid, 15)
        endpoints.wait(10)
        connection.creation.destroy_test_db(old_name, verbosity=0)
        subprocess.run(["rm", "-rf", str(tmp)], check=False)


if __name__ == "__main__" and sys.argv[1:2] == ["serve"]:
    asyncio.run(_serve(int(sys.argv[2])))

__all__ = ["run"]
