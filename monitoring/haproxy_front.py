"""HAProxy in front of a demo fleet service (``make run``): the ``haproxy`` deploy driver's
demo. The fleet sends that service's traffic to HAProxy's frontend; releases move the weights
through the admin socket the ``edge`` environment names, and the share of real requests each
track serves follows.
"""

import shutil
import subprocess
import time
from pathlib import Path

from monitoring.fleet import Fleet, free_port
from portal.procs import die_with_parent

HAPROXY = shutil.which("haproxy") or (
    "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else ""
)


def available() -> bool:
    return bool(HAPROXY)


def config(socket_path: str, port: int, backend: str, stable_port: int, canary_port: int) -> str:
    return f"""global
    stats socket {socket_path} mode 600 level admin
    stats timeout 10s
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend demo
    bind 127.0.0.1:{port}
    default_backend {backend}
backend {backend}
    balance roundrobin
    option httpchk GET /healthz
    server stable 127.0.0.1:{stable_port} weight 256 check inter 2s
    server canary 127.0.0.1:{canary_port} weight 0 check inter 2s
"""


# the demo service behind HAProxy, and where its admin socket is (releases' `edge` environment)
FRONTED = "home-feed-api"


def socket_path(var_dir) -> str:
    return str(Path(var_dir) / "haproxy" / "admin.sock")


def start(fleet: Fleet, slug: str, socket_path: str) -> subprocess.Popen:
    """Start HAProxy for ``slug`` and point the fleet's traffic at it; returns the process."""
    folder = Path(socket_path).parent
    folder.mkdir(parents=True, exist_ok=True)
    Path(socket_path).unlink(missing_ok=True)
    port = free_port()
    cfg = folder / "haproxy.cfg"
    stable = fleet.instances[(slug, "stable")].port
    canary = fleet.instances[(slug, "canary")].port
    cfg.write_text(config(socket_path, port, slug, stable, canary))
    proc = subprocess.Popen(  # noqa: S603 - a fixed binary and our own config
        [HAPROXY, "-db", "-f", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=open(folder / "haproxy.log", "ab"),  # noqa: SIM115 - the child keeps it
        start_new_session=True,
        preexec_fn=die_with_parent,  # noqa: PLW1509 - ends with the fleet
    )
    deadline = time.monotonic() + 15
    while not Path(socket_path).exists() and time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"haproxy exited ({proc.returncode}); see {folder / 'haproxy.log'}")
        time.sleep(0.1)
    fleet.services[slug].via = f"http://127.0.0.1:{port}"
    return proc


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
