"""Fault tests (`make chaos`; `make test` runs a short form): real worker processes SIGKILLed,
a private Redis and a private PostgreSQL cluster restarted, crowds of concurrent requests against
a real gunicorn. Each test records what it injected and what it lost in ``LEDGER``; the table is
printed at the end of the session.

``CHAOS_ROUNDS`` (default 2) is the number of worker kills (each kill hits a pipeline step and
a Terraform run at once) and of Redis restarts; ``make chaos`` uses 20.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import pids_with_cmdline
from tests.releases.conftest import deployer, paused_release, playback_api, webhook_env  # noqa: F401

ROUNDS = int(os.environ.get("CHAOS_ROUNDS", "2"))
ROOT = Path(__file__).resolve().parents[2]
LEDGER = []  # dicts: fault, injected, outcome, lost


def record(fault, injected, outcome, lost=0):
    LEDGER.append({"fault": fault, "injected": injected, "outcome": outcome, "lost": lost})


def pytest_configure(config):
    config.addinivalue_line("markers", "chaos: fault-injection tests (make chaos)")


def pytest_collection_modifyitems(config, items):
    here = str(Path(__file__).parent)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.chaos)


def pytest_terminal_summary(terminalreporter):
    if not LEDGER:
        return
    w = terminalreporter
    w.section(f"chaos: faults injected (CHAOS_ROUNDS={ROUNDS})")
    w.line(f"{'fault':<58} {'injected':>8}  {'lost':>4}  outcome")
    for row in LEDGER:
        w.line(f"{row['fault']:<58} {row['injected']:>8}  {row['lost']:>4}  {row['outcome']}")
    total = sum(r["lost"] for r in LEDGER)
    w.line(f"anything lost: {'nothing' if total == 0 else total}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(fn, timeout=30.0, what="condition", interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def marked_pids(marker: str):
    """Live processes whose command line holds ``marker`` (a step we started)."""
    return pids_with_cmdline(marker)


class Gunicorn:
    """Backline under a real gunicorn (2 workers x 4 threads) with the given environment."""

    def __init__(self, env, logfile):
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.logfile = logfile
        self.proc = None

    def start(self, timeout=60):
        import urllib.request

        self.log = open(self.logfile, "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "portal.wsgi:application",
                "--workers",
                "2",
                "--threads",
                "4",
                "--worker-class",
                "gthread",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--timeout",
                "60",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited; see {self.logfile}")
            try:
                urllib.request.urlopen(f"{self.url}/login/", timeout=2)
                return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"gunicorn not answering; see {self.logfile}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(5)
        if getattr(self, "log", None):
            self.log.close()


def portal_env(database_url, redis_url, **extra):
    from django.conf import settings

    env = {k: v for k, v in os.environ.items() if k not in ("TEST_DATABASE_NAME",)}
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        DJANGO_SETTINGS_MODULE="portal.settings",
        BACKLINE_VAR_DIR=str(settings.VAR_DIR),
        BACKLINE_WORKSPACE_ROOT=str(settings.WORKSPACE_ROOT),
        DEBUG="false",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        PYTHONPATH=str(ROOT),
        **extra,
    )
    return env


def test_database_url():
    from django.conf import settings

    db = settings.DATABASES["default"]
    return (
        f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )


@pytest.fixture
def chaos_root(tmp_path, settings, monkeypatch):
    """Workspaces (checkouts, Terraform state) under tmp_path, for this process and children."""
    root = tmp_path / "workspaces"
    monkeypatch.setenv("BACKLINE_WORKSPACE_ROOT", str(root))
    settings.WORKSPACE_ROOT = root
    return root


@pytest.fixture
def gunicorn(transactional_db, chaos_root, tmp_path):
    """A real gunicorn serving the test database."""
    from django.conf import settings

    server = Gunicorn(
        portal_env(test_database_url(), settings.REDIS_URL), tmp_path / "gunicorn.log"
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="session", autouse=True)
def _drop_state_roles(drop_state_roles):
    yield
