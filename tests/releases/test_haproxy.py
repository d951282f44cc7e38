"""The haproxy deploy driver against a real HAProxy (Debian's ``haproxy``) on loopback.

HAProxy fronts two real HTTP processes, stable and canary; a release moves the weights through
the Runtime API (admin stats socket) and the share of real requests each process served is
measured over 500 requests per step (issue 17)."""

import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from portal.actors import Actor
from releases import services
from releases.drivers import DriverError, get_driver
from releases.haproxy import RuntimeAPI, canary_weight
from releases.models import Environment
from tests.releases.conftest import settle

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
pytestmark = pytest.mark.skipif(
    not shutil.which("haproxy") and not shutil.os.path.exists(HAPROXY),
    reason="haproxy missing (make deps installs it)",
)

REQUESTS = 500
STEPS = [
    {"set_weight": 10},
    {"pause": {}},
    {"set_weight": 50},
    {"pause": {}},
    {"set_weight": 100},
    {"pause": {}},
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Track:
    """A real HTTP process standing for one version; counts what it served."""

    def __init__(self, name):
        self.name, self.served = name, 0
        track = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                track.served += 1
                body = track.name.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class HAProxy:
    def __init__(self, tmp_path, stable: Track, canary: Track, backend="playback-api"):
        self.socket = str(tmp_path / "admin.sock")
        self.port = _free_port()
        cfg = tmp_path / "haproxy.cfg"
        cfg.write_text(
            f"""global
    stats socket {self.socket} mode 600 level admin
    stats timeout 10s
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend fe
    bind 127.0.0.1:{self.port}
    default_backend {backend}
backend {backend}
    balance roundrobin
    server stable 127.0.0.1:{stable.port} weight 256
    server canary 127.0.0.1:{canary.port} weight 0
"""
        )
        check = subprocess.run([HAPROXY, "-c", "-f", str(cfg)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", str(cfg)], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while True:
            try:
                RuntimeAPI(self.socket).command("show info")
                break
            except DriverError:
                assert self.proc.poll() is None, self.proc.stderr.read().decode()
                assert time.monotonic() < deadline, "haproxy did not open its admin socket"
                time.sleep(0.1)

    def send(self, n=REQUESTS) -> dict[str, int]:
        seen: dict[str, int] = {}
        for _ in range(n):
            r = requests.get(
                f"http://127.0.0.1:{self.port}/", headers={"Connection": "close"}, timeout=10
            )
            assert r.status_code == 200, r.text
            seen[r.text] = seen.get(r.text, 0) + 1
        return seen

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def lb(tmp_path):
    stable, canary = Track("stable"), Track("canary")
    proxy = HAProxy(tmp_path, stable, canary)
    yield proxy
    proxy.stop()
    stable.stop()
    canary.stop()


@pytest.fixture
def haproxy_env(db, lb):
    env, _ = Environment.objects.update_or_create(
        name="vm-fleet",
        defaults={
            "driver": "haproxy",
            "driver_config": {
                "socket": lb.socket,
                "backend": "{service}",
                "stable_server": "stable",
                "canary_server": "canary",
            },
        },
    )
    return env


def _share(seen: dict[str, int], track: str) -> float:
    return 100.0 * seen.get(track, 0) / sum(seen.values())


def test_weights_scale_to_haproxy_range():
    assert [canary_weight(p) for p in (0, 10, 50, 100, 150, -5)] == [0, 26, 128, 256, 256, 0]


def test_release_moves_real_traffic_through_haproxy(lb, haproxy_env, playback_api, alice):
    actor = Actor(user=alice, door="ui")
    assert _share(lb.send(100), "canary") == 0  # before: stable only

    r = settle(
        services.create_release(
            playback_api, actor=actor, environment=haproxy_env, version="2.0.0", steps=STEPS
        )
    )
    assert (r.status, r.weight) == ("paused", 10), (r.status, r.message, r.driver_error)
    assert abs(_share(lb.send(), "canary") - 10) <= 3

    r = settle(services.promote_release(r, actor=actor, step=r.step_index))
    assert (r.status, r.weight) == ("paused", 50), (r.status, r.driver_error)
    assert abs(_share(lb.send(), "canary") - 50) <= 3
    status = get_driver(haproxy_env).status(r)
    assert status.weight == 50 and status.healthy, status
    assert status.detail["canary"]["weight"] == 128

    r = settle(services.promote_release(r, actor=actor, step=r.step_index))
    assert (r.status, r.weight) == ("paused", 100)
    assert _share(lb.send(), "canary") == 100

    r = settle(services.promote_release_full(r, actor=actor))
    assert r.status == "succeeded", (r.status, r.message, r.driver_error)
    # promoted: the stable slot now runs the new version, the canary slot is out
    assert _share(lb.send(), "canary") == 100
    status = get_driver(haproxy_env).status(r)
    assert status.detail["canary"]["weight"] == 0
    assert status.detail["stable"]["address"] == status.detail["canary"]["address"]


def test_abort_sends_everything_back_to_stable(lb, haproxy_env, playback_api, alice):
    actor = Actor(user=alice, door="ui")
    r = settle(
        services.create_release(
            playback_api, actor=actor, environment=haproxy_env, version="2.0.1", steps=STEPS
        )
    )
    r = settle(services.promote_release(r, actor=actor, step=r.step_index))
    assert abs(_share(lb.send(), "canary") - 50) <= 3
    r = settle(services.abort_release(r, actor=actor, reason="errors"))
    assert r.status == "aborted" and r.weight == 0, (r.status, r.driver_error)
    assert _share(lb.send(), "canary") == 0


def test_driver_errors_leave_the_release_where_it_was(tmp_path, db, playback_api, alice):
    env = Environment.objects.create(
        name="vm-broken",
        driver="haproxy",
        driver_config={
            "socket": str(tmp_path / "nothing.sock"),
            "backend": "{service}",
            "stable_server": "stable",
            "canary_server": "canary",
        },
    )
    r = settle(
        services.create_release(
            playback_api, actor=Actor(user=alice), environment=env, version="3", steps=STEPS
        )
    )
    assert r.weight == 0 and r.status == "progressing", r.status
    assert "HAProxy runtime API" in r.driver_error


def test_names_cannot_smuggle_commands(lb, haproxy_env, playback_api):
    haproxy_env.driver_config = {
        **haproxy_env.driver_config,
        "canary_server": "canary weight 0\nshutdown",
    }
    from releases.models import Release

    release = Release(service=playback_api, environment=haproxy_env, version="x")
    with pytest.raises(DriverError, match="not a valid name"):
        get_driver(haproxy_env).set_weight(release, 10)
    release.deploy_params = {"canary_address": "127.0.0.1:1; shutdown sessions"}
    haproxy_env.driver_config = {**haproxy_env.driver_config, "canary_server": "canary"}
    with pytest.raises(DriverError, match="host:port"):
        get_driver(haproxy_env).set_weight(release, 10)
    assert lb.proc.poll() is None  # still serving
    assert lb.send(20)


class CountingSocket:
    """A Unix socket in front of HAProxy's admin socket that relays each command to it and
    keeps the command lines it saw."""

    def __init__(self, path, target):
        self.path, self.target, self.commands = str(path), target, []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(8)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                line = b""
                while not line.endswith(b"\n") and (chunk := conn.recv(4096)):
                    line += chunk
                self.commands.append(line.decode().strip())
                conn.sendall(RuntimeAPI(self.target).command(line.decode().strip()).encode())

    def stop(self):
        self.server.close()


def test_promote_reads_show_stat_once(tmp_path, lb, haproxy_env, playback_api):
    from releases.models import Release

    counter = CountingSocket(tmp_path / "counted.sock", lb.socket)
    try:
        haproxy_env.driver_config = {**haproxy_env.driver_config, "socket": counter.path}
        driver = get_driver(haproxy_env)
        release = Release(service=playback_api, environment=haproxy_env, version="4")
        driver.set_weight(release, 50)
        assert counter.commands.count("show stat") == 1
        del counter.commands[:]
        driver.promote(release)
        assert counter.commands.count("show stat") == 1, counter.commands
        assert sum(c.startswith("set server") for c in counter.commands) == 5
        status = get_driver(haproxy_env).status(release)
        assert status.detail["canary"]["weight"] == 0 and status.detail["stable"]["weight"] == 256
        assert status.detail["stable"]["address"] == status.detail["canary"]["address"]
        assert _share(lb.send(100), "canary") == 100  # the stable slot runs the new version
    finally:
        counter.stop()
