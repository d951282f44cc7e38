"""A real Backline web server (gunicorn, as `make run` starts it) against the test database.

Used by the schemathesis run and the README example test. The data must be committed for
the server to see it: use it with ``transactional_db``.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent


def server_env():
    db = settings.DATABASES["default"]
    env = dict(os.environ)
    env["DATABASE_URL"] = (
        f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )
    env["REDIS_URL"] = settings.REDIS_URL
    env["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    env["BACKLINE_VAR_DIR"] = str(settings.VAR_DIR)
    env["DEBUG"] = "0"
    env.pop("TEST_DATABASE_NAME", None)
    return env


FUZZ_CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance"
)


def schemathesis_argv(schema: str, token: str, max_time: int, seed: str, *extra: str) -> list:
    """The schemathesis run every fuzz test makes: all phases but stateful, one worker,
    bounded in time, the four checks above, with the token as a bearer token."""
    return [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        schema,
        "-H",
        f"Authorization: Bearer {token}",
        "--checks",
        FUZZ_CHECKS,
        "--phases",
        "examples,coverage,fuzzing",
        "-w",
        "1",
        "--max-time",
        str(max_time),
        "--request-timeout",
        "30",
        "--seed",
        seed,
        *extra,
    ]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A server started as a subprocess in its own process group, output to ``logfile``,
    ready once ``ready_url`` answers below 500; ``stop()`` ends the whole group."""

    name = "server"
    logfile: Path

    proc: subprocess.Popen | None = None

    def spawn(self, argv, *, env, ready_url, timeout=60):
        self.log = open(self.logfile, "wb")
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.output()}")
            try:
                if requests.get(ready_url, timeout=2).status_code < 500:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready in {timeout}s:\n{self.output()}")

    def output(self, tail=20000):
        try:
            return self.logfile.read_bytes()[-tail:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(5)
        if getattr(self, "log", None):
            self.log.close()


class PortalServer(ServerProcess):
    name = "web server"

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        Path(settings.VAR_DIR).mkdir(parents=True, exist_ok=True)
        self.logfile = Path(settings.VAR_DIR) / f"test-web-{os.getpid()}.log"

    def start(self, timeout=60):
        argv = [
            sys.executable,
            "-m",
            "gunicorn",
            "portal.wsgi",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            "1",
            "--threads",
            "4",
            "--timeout",
            "60",
            # no request-line limit in front of the app: a long query string must reach
            # Django (gunicorn's own 414 page is not part of the API's contract)
            "--limit-request-line",
            "0",
            "--error-logfile",
            "-",
        ]
        from gunicorn.config import KNOWN_SETTINGS

        if any(s.name == "control_socket_disable" for s in KNOWN_SETTINGS):
            argv.append("--no-control-socket")
        return self.spawn(argv, env=server_env(), ready_url=f"{self.url}/healthz", timeout=timeout)


@pytest.fixture
def portal_server(transactional_db):
    server = PortalServer().start()
    yield server
    server.stop()
