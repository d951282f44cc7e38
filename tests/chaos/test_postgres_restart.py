"""Restart PostgreSQL under load: a private cluster (initdb under /tmp, a free loopback port;
never the shared one) serves a real gunicorn and a real Celery worker while threads read the
catalog, create services (a service, its tags and its audit event in one transaction) and
trigger pipeline runs. The cluster is stopped hard (``pg_ctl stop -m immediate``) and started
again: requests during the outage get 503 quickly; the portal and the worker recover without a
restart of their own; no half-written rows."""

import os
import subprocess
import sys
import threading
import time

import psycopg
import pytest
import requests

from tests.chaos.conftest import ROOT, Gunicorn, portal_env, record, wait_for
from tests.pgcluster import PrivatePostgres

pytestmark = [pytest.mark.chaos, pytest.mark.worker]
SETUP = """
from portal.models import ApiToken
from squads.models import Squad
from tests.factories import ServiceFactory
squad = Squad.objects.create(slug="pg", name="PG")
ServiceFactory(slug="pg-runner", owner=squad, repository_url={repo!r})
_, raw = ApiToken.generate(squad=squad, name="chaos", scopes=["catalog:write", "pipelines:run"])
print(raw)
"""


@pytest.fixture
def private_pg():
    pg = PrivatePostgres().init()
    yield pg
    pg.destroy()


def test_postgres_restart_under_load(private_pg, tmp_path, chaos_root):
    from django.conf import settings

    from tests.pipelines.conftest import GitRepo

    repo = GitRepo(tmp_path / "repo")
    repo.commit(
        {
            "backline.yml": "stages:\n  - name: main\n    steps:\n      - name: talk\n"
            '        run: "for i in 1 2 3 4 5 6; do echo line-$i; sleep 0.3; done"\n'
        },
        "first",
    )
    env = portal_env(
        private_pg.url,
        settings.REDIS_URL,
        DB_CONNECT_TIMEOUT="2",
        PIPELINES_HEARTBEAT_SECONDS="0.5",
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=300,
    )
    token = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SETUP.format(repo=repo.url)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout.split()[-1]
    auth = {"Authorization": f"Bearer {token}"}
    import redis

    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    log = open(tmp_path / "worker.log", "ab")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "portal", "worker", "-c", "2", "--loglevel=INFO"]
        + ["--without-gossip", "--without-mingle", "-n", f"pg-{os.getpid()}@%h"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    web = Gunicorn(env, tmp_path / "gunicorn.log").start()
    results = []  # (t_start, t_end, kind, status, key)
    stop = threading.Event()
    counter = iter(range(10**6))

    def load(kind):
        with requests.Session() as s:
            while not stop.is_set():
                n = next(counter)
                t0 = time.monotonic()
                key = None
                try:
                    if kind == "read":
                        r = s.get(
                            f"{web.url}/api/v1/services/?page_size=5", headers=auth, timeout=20
                        )
                    elif kind == "write":
                        key = f"svc-{n}"
                        r = s.post(
                            f"{web.url}/api/v1/services/",
                            json={"slug": key, "name": key, "owner": "pg", "tags": ["a", f"t{n}"]},
                            headers=auth,
                            timeout=20,
                        )
                    else:
                        r = s.post(
                            f"{web.url}/api/v1/services/pg-runner/runs",
                            json={"ref": "main"},
                            headers=auth,
                            timeout=20,
                        )
                        if r.status_code in (201, 202):
                            key = r.json()["id"]
                    code = r.status_code
                except requests.RequestException as exc:
                    code = type(exc).__name__
                results.append((t0, time.monotonic(), kind, code, key))
                time.sleep(0.05 if kind != "run" else 0.5)

    threads = [threading.Thread(target=load, args=(k,)) for k in ("read", "read", "write", "run")]
    try:
        wait_for(
            lambda: worker.poll() is None and b"ready." in (tmp_path / "worker.log").read_bytes(),
            60,
            "worker",
        )
        for t in threads:
            t.start()
        time.sleep(3)
        private_pg.stop("immediate")  # a crash: no clean shutdown
        down_done = time.monotonic()
        time.sleep(4)
        up_at = time.monotonic()
        private_pg.start()
        up_done = time.monotonic()
        time.sleep(8)
        stop.set()
        for t in threads:
            t.join(30)
        # triggered runs finish on the same worker (no restart), the reaper settles the rest
        assert worker.poll() is None, "the worker died"
        run_ids = [k for (_, _, kind, code, k) in results if kind == "run" and k]

        def runs_settled():
            subprocess.run(
                [
                    sys.executable,
                    "manage.py",
                    "shell",
                    "-c",
                    "from pipelines.tasks import reap_lost_runs; reap_lost_runs(stale_seconds=5)",
                ],
                cwd=ROOT,
                env=env,
                capture_output=True,
                timeout=60,
            )
            with psycopg.connect(private_pg.dsn()) as conn:
                left = conn.execute(
                    "SELECT count(*) FROM pipelines_pipelinerun WHERE status IN ('queued','running')"
                ).fetchone()[0]
            return left == 0

        try:
            wait_for(runs_settled, 90, "every pipeline run final", interval=2)
        except AssertionError:
            with psycopg.connect(private_pg.dsn()) as conn:
                stuck = conn.execute(
                    "SELECT id, status, heartbeat_at, started_at, error FROM pipelines_pipelinerun"
                    " WHERE status IN ('queued', 'running')"
                ).fetchall()
            raise AssertionError(f"runs not final: {stuck}") from None
    finally:
        stop.set()
        web.stop()
        if worker.poll() is None:
            os.killpg(worker.pid, 15)
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, 9)
        log.close()

    during = [r for r in results if r[0] >= down_done and r[1] <= up_at]
    assert during, "no request during the outage"
    assert all(r[3] == 503 for r in during), {r[3] for r in during}
    slowest = max(r[1] - r[0] for r in during)
    assert slowest < 3.0, slowest
    after = [r for r in results if r[0] >= up_done]
    first_ok = min((r[1] for r in after if r[3] in (200, 201, 202)), default=None)
    assert first_ok is not None, "the portal did not recover"
    recovered_in = first_ok - up_done
    late = [r for r in after if r[0] >= up_done + 3]
    assert late and all(r[3] in (200, 201, 202) for r in late), {r[3] for r in late}

    with psycopg.connect(private_pg.dsn()) as conn:
        q = conn.execute
        # every service has all of its tags and its audit event, or it does not exist
        half_services = q(
            """SELECT s.slug FROM squads_service s
               WHERE s.slug LIKE 'svc-%%' AND (
                 (SELECT count(*) FROM squads_service_tags st WHERE st.service_id = s.id) <> 2
                 OR NOT EXISTS (SELECT 1 FROM portal_auditevent a
                                WHERE a.action = 'service.create' AND a.target_id = s.id::text))"""
        ).fetchall()
        created = {k for (_, _, kind, code, k) in results if kind == "write" and code == 201}
        present = {r[0] for r in q("SELECT slug FROM squads_service WHERE slug LIKE 'svc-%%'")}
        missing = created - present
        # pipeline runs: final, log complete (chunks add up to log_size), finished_at set
        half_runs = q(
            """SELECT r.id FROM pipelines_pipelinerun r
               WHERE r.finished_at IS NULL
                  OR r.log_size <> (SELECT coalesce(sum(c.size), 0) FROM pipelines_logchunk c
                                    WHERE c.run_id = r.id)"""
        ).fetchall()
        statuses = dict(
            q("SELECT status, count(*) FROM pipelines_pipelinerun GROUP BY status").fetchall()
        )
        orphans = q(
            """SELECT count(*) FROM pipelines_steprun st
               LEFT JOIN pipelines_pipelinerun r ON r.id = st.run_id WHERE r.id IS NULL"""
        ).fetchone()[0]
    assert not half_services, half_services
    assert not missing, missing
    assert not half_runs, half_runs
    assert orphans == 0
    assert set(run_ids) <= set(
        r
        for (r,) in psycopg.connect(private_pg.dsn()).execute(
            "SELECT id FROM pipelines_pipelinerun"
        )
    )
    record(
        "PostgreSQL crash-stop + restart under load (private cluster)",
        1,
        f"{len(during)} requests in the {up_at - down_done:.1f}s outage: all 503, slowest "
        f"{slowest * 1000:.0f} ms; recovered {recovered_in:.1f}s after start, no restarts; "
        f"{len(created)} services created whole; runs {statuses}",
        lost=len(half_services) + len(missing) + len(half_runs) + orphans,
    )
