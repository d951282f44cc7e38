"""`manage.py run_portal` (what `make run` calls) really works on a fresh machine: SQLite and the
embedded Redis under a temporary var/, demo data loaded, web answering, a real Celery worker
consuming from the embedded Redis, and Ctrl-C (SIGINT) leaving no process behind."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 150  # migrate + seed + gunicorn on a busy 2-core machine


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _group_alive(pgid):
    """Is any live (non-zombie) process left in the process group ``pgid``?"""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for its reaper is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class Portal:
    def __init__(self, var_dir, port, **extra_env):
        self.var_dir = var_dir
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.lines = []
        env = dict(os.environ)
        # pytest-django forces PostgreSQL + the test Redis in *this* process; the portal must
        # get the `make run` environment: no DATABASE_URL/REDIS_URL -> SQLite + embedded Redis.
        for name in ("DATABASE_URL", "REDIS_URL", "TEST_DATABASE_NAME", "BACKLINE_TESTING"):
            env.pop(name, None)
        env.update(
            BACKLINE_VAR_DIR=str(var_dir),
            PORT=str(port),
            DJANGO_SETTINGS_MODULE="portal.settings",
            BACKLINE_DEMO_FLEET="0",
            WEB_WORKERS="1",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra_env)
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "run_portal"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in iter(self.proc.stdout.readline, b""):
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    @property
    def output(self):
        return "\n".join(self.lines)

    def tail(self, n=60):
        return "\n".join(self.lines[-n:])

    def child_pids(self):
        return {
            name: int(pid) for name, pid in re.findall(r"started (\w+) \(pid (\d+)\)", self.output)
        }

    def redis_pid(self):
        pidfile = self.var_dir / "redis.pid"
        return int(pidfile.read_text().strip()) if pidfile.exists() else None

    def wait_healthy(self):
        deadline = time.time() + START_TIMEOUT
        while time.time() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"run_portal exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=3).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        pytest.fail(f"/healthz not 200 within {START_TIMEOUT}s:\n{self.tail()}")

    def wait_for_output(self, needle, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if needle in self.output:
                return True
            time.sleep(0.2)
        return False

    def sign_in(self, username, password):
        """A session signed in through the real login form (the first page: the status board)."""
        s = requests.Session()
        r = s.get(f"{self.url}/login/", timeout=10)
        assert r.status_code == 200
        r = s.post(
            f"{self.url}/login/",
            data={
                "username": username,
                "password": password,
                "csrfmiddlewaretoken": s.cookies["csrftoken"],
            },
            headers={"Referer": f"{self.url}/login/"},
            timeout=10,
        )
        assert r.status_code == 200 and r.url == f"{self.url}/", r.text[:500]
        return s

    def banner_logins(self):
        """{username: password} of the banner's "Demo logins" lines."""
        return dict(re.findall(r"^portal \|\s+(\w+)\s+/ (\S+)\s", self.output, re.M))

    def descendants(self):
        """Every live process run_portal started, children's children included (the fleet's
        instances and HAProxy, gunicorn's and Celery's workers, the embedded Redis)."""
        parents = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        found, todo = set(), [self.proc.pid]
        while todo:
            for pid in parents.get(todo.pop(), []):
                if pid not in found:
                    found.add(pid)
                    todo.append(pid)
        return found

    def cleanup(self):
        """Last resort if the test failed half-way: kill whatever is left, by process group."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        for pid in self.child_pids().values():
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        pid = self.redis_pid()
        if pid and _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def var_dir():
    # Short path: the embedded Redis listens on a unix socket (108-byte path limit).
    path = Path(tempfile.mkdtemp(prefix="bl-run-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
def test_run_portal_sqlite_embedded_redis(var_dir):
    # INFO: the worker's task lines show (the default terminal is warnings and the banner)
    portal = Portal(var_dir, _free_port(), BACKLINE_LOG_LEVEL="INFO")
    try:
        portal.wait_healthy()
        assert (var_dir / "backline.sqlite3").exists()
        assert (var_dir / "redis.sock").exists()

        # The banner: URL, demo logins, API docs.
        assert portal.wait_for_output("Backline is running at"), portal.tail()
        out = portal.output
        assert f"http://127.0.0.1:{portal.port}/" in out
        assert "Listening on 127.0.0.1 only" in out  # safe default: BACKLINE_BIND unset
        assert f"--bind 127.0.0.1:{portal.port}" in out  # gunicorn, as started
        for login in ("admin   / backline-admin", "alice   / backline-demo", "bob", "charlie"):
            assert login in out
        assert "/api/docs/" in out
        children = portal.child_pids()
        assert {"web", "worker", "beat"} <= set(children), out

        # Demo data is there: alice signs in through the real form and is lead of playback.
        s = portal.sign_in("alice", "backline-demo")
        me = s.get(f"{portal.url}/api/v1/me/", timeout=10).json()
        assert me["username"] == "alice" and "playback" in me["squads"]
        assert s.get(f"{portal.url}/api/schema/", timeout=30).status_code == 200
        # the catalog on SQLite: the ORM read of the page (PostgreSQL's is one prepared
        # statement), with its scorecard and last-run cells
        catalog = s.get(f"{portal.url}/catalog/", timeout=30)
        assert catalog.status_code == 200 and "checks pass" in catalog.text, catalog.text[:500]
        assert "Last run" in catalog.text and 'href="/services/' in catalog.text

        # A task sent through the embedded Redis is executed by the worker run_portal started.
        from celery import Celery

        broker = Celery(  # not the current app: later tests in this process send through it
            "probe",
            broker=f"redis+socket://{var_dir / 'redis.sock'}?virtual_host=0",
            set_as_current=False,
        )
        note = f"probe-{uuid.uuid4().hex[:8]}"
        broker.send_task("portal.tasks.record_heartbeat", args=[note])
        deadline = time.time() + 60
        found = False
        while time.time() < deadline and not found:
            events = s.get(
                f"{portal.url}/api/v1/audit/", params={"action": "worker.heartbeat"}, timeout=10
            ).json()["results"]
            found = any(e["data"].get("note") == note for e in events)
            time.sleep(0.5)
        assert found, portal.tail()
        assert portal.wait_for_output("Task portal.tasks.record_heartbeat[")
        assert re.search(r"^worker\s*\| .*record_heartbeat\[.*\] received", portal.output, re.M)
        broker.close()

        # Ctrl-C: every child stops, the embedded Redis too, exit code 0.
        redis_pid = portal.redis_pid()
        assert redis_pid and _pid_alive(redis_pid)
        portal.proc.send_signal(signal.SIGINT)
        assert portal.proc.wait(60) == 0, portal.tail()
        portal.reader.join(5)
        deadline = time.time() + 10
        while time.time() < deadline and (
            any(_group_alive(pgid) for pgid in children.values()) or _pid_alive(redis_pid)
        ):
            time.sleep(0.2)
        leftovers = [name for name, pgid in children.items() if _group_alive(pgid)]
        assert not leftovers, f"still running: {leftovers}\n{portal.tail()}"
        assert not _pid_alive(redis_pid), "embedded Redis still running"
        assert "stopped" in portal.lines[-1]
        # stopped cleanly: no worker (or any child's) traceback on the way out
        assert "Traceback" not in portal.output, portal.tail(120)
    finally:
        portal.cleanup()

    # Second start on the same var/ (already migrated and seeded): a child that dies on its
    # own stops everything, and run_portal exits non-zero.
    again = Portal(var_dir, _free_port())
    try:
        again.wait_healthy()
        assert "0 created, 0 updated" in again.output
        children = again.child_pids()
        os.killpg(children["beat"], signal.SIGKILL)
        assert again.proc.wait(60) == 1, again.tail()
        again.reader.join(5)
        assert "beat" in again.output and "exited unexpectedly" in again.output
        deadline = time.time() + 10
        while time.time() < deadline and any(_group_alive(g) for g in children.values()):
            time.sleep(0.2)
        assert not [name for name, pgid in children.items() if _group_alive(pgid)]
    finally:
        again.cleanup()


def _cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
    except OSError:
        return "?"


def _points(session, portal, slug, range_key, track, signal="request_rate"):
    """The (t, value) points with a value of one signal, as the service dashboard's chart of
    that track draws them (the JSON twin of the page: /api/v1/services/<slug>/signals)."""
    r = session.get(
        f"{portal.url}/api/v1/services/{slug}/signals",
        params={"range": range_key, "track": track},
        timeout=30,
    )
    assert r.status_code == 200, r.text[:500]
    return [(t, v) for t, v in r.json()["tracks"][track][signal]["points"] if v is not None]


@pytest.mark.slow
def test_killed_run_portal_leaves_nothing_behind(var_dir):
    """`make run` as a new user gets it, the demo fleet on: right after the banner every chart
    of the dashboards has the last hours behind it (the fleet's back-fill), for every track of
    every demo service; the terminal holds only the banner and warnings (no Celery banner, no
    INFO line, no traceback). Then a supervisor ends it with TERM and, at once, KILL: every
    process it started (web, worker, beat, the fleet with its instances and HAProxy, the
    embedded Redis) ends with it."""
    from monitoring.management.commands.demo_fleet import DEFAULT_SERVICES

    portal = Portal(var_dir, _free_port(), BACKLINE_DEMO_FLEET="1")
    try:
        portal.wait_healthy()
        # the banner waits for the fleet's back-fill (run_portal gives it 180 s at most)
        assert portal.wait_for_output("Backline is running at", timeout=300), portal.tail()
        banner_at = time.time()
        children = portal.child_pids()
        redis_pid = portal.redis_pid()
        assert {"web", "worker", "beat", "fleet"} <= set(children) and redis_pid, portal.tail()
        processes = {pid: _cmdline(pid) for pid in portal.descendants()}
        assert any("monitoring.fleet_app" in c for c in processes.values()), processes

        # A new user signs in with the banner's login and opens the dashboards: every demo
        # service of the fleet is listed.
        logins = portal.banner_logins()
        assert logins.get("alice") == "backline-demo", portal.tail()
        s = portal.sign_in("alice", logins["alice"])
        index = s.get(f"{portal.url}/dashboards/", timeout=30)
        assert index.status_code == 200
        listed = set(re.findall(r'href="/dashboards/services/([\w-]+)/"', index.text))
        assert {spec.slug for spec in DEFAULT_SERVICES} <= listed, listed
        for slug, tracks in ((spec.slug, spec.tracks) for spec in DEFAULT_SERVICES):
            # the page: its four charts each draw a line per track (none is "No data")
            page = s.get(f"{portal.url}/dashboards/services/{slug}/", timeout=60)
            assert page.status_code == 200
            assert page.text.count('class="card chart-card"') == 4, slug
            assert "No data in this range" not in page.text, slug
            for track in tracks:
                drawn = re.findall(rf'<path d="[^"]+"[^>]*data-series="{track}"', page.text)
                assert len(drawn) >= 4, (slug, track, len(drawn))
                # behind the 6 h chart: the back-filled hours with traffic, at least a point per
                # 30 s scrape over 2 h
                points = [p for p in _points(s, portal, slug, "6h", track) if p[1] > 0]
                span = points[-1][0] - points[0][0] if points else 0
                assert len(points) >= 2 * 3600 / 30 and span >= 2 * 3600, (slug, track, span)
                assert _points(s, portal, slug, "6h", track, "p95"), (slug, track)

        # Beat and worker carry on with live scrapes: the request rate has a point whose 60 s
        # window starts after the banner (two scrapes since), so they have ticked meanwhile.
        slug = DEFAULT_SERVICES[0].slug
        deadline = time.time() + 180  # the worker starts with the banner: its boot, 2 scrapes
        live = []
        while time.time() < deadline and not live:
            live = [p for p in _points(s, portal, slug, "15m", "stable") if p[0] > banner_at + 60]
            time.sleep(1)
        assert live, portal.tail()
        assert list(var_dir.glob("celerybeat-schedule*")), portal.tail()

        # The terminal: the banner and warnings only.
        out = portal.output
        for noise in ("celery@", "[config]", "SecurityWarning", " INFO ", "Traceback"):
            assert noise not in out, f"{noise!r} in the terminal:\n{portal.tail(120)}"
        fleet_lines = [line for line in portal.lines if line.startswith("fleet ")]
        assert fleet_lines and all("demo fleet running" in line for line in fleet_lines), (
            fleet_lines
        )

        processes.update({pid: _cmdline(pid) for pid in portal.descendants()})
        portal.proc.send_signal(signal.SIGTERM)
        portal.proc.send_signal(signal.SIGKILL)
        portal.proc.wait(30)
        deadline = time.time() + 60
        while time.time() < deadline and any(_pid_alive(pid) for pid in processes):
            time.sleep(0.3)
        left = {pid: cmd for pid, cmd in processes.items() if _pid_alive(pid)}
        assert not left, f"still running after run_portal was killed: {left}"
        assert not _pid_alive(redis_pid), "the embedded Redis outlived run_portal"
    finally:
        portal.cleanup()
