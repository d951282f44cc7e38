"""A demo fleet: real HTTP processes (``monitoring.fleet_app``) per service and track, and a
traffic generator splitting requests between stable and canary by weight.

Library use (the canary-release work drives it)::

    fleet = Fleet([FleetService("checkout"), FleetService("search")], base_port=9100)
    fleet.start()                       # processes up, /metrics answering
    fleet.set_weight("checkout", 10)    # 10 % of checkout traffic to canary
    fleet.set_behaviour("checkout", "canary", error_rate=0.3)
    fleet.start_traffic(rps=5)          # background thread
    fleet.metrics_urls("checkout")      # [{"url": ..., "track": "stable"}, {..."canary"}]
    fleet.stop()                        # TERM, grace, KILL every child

Every process runs in its own process group, so ``stop()`` (and the ``demo_fleet`` command's
SIGTERM handler) can always reap it, and ends when the process that started it does (even
SIGKILLed: ``portal.procs.die_with_parent``).

From *another* process (a deploy driver in a Celery worker), while ``manage.py demo_fleet``
runs: ``publish_weight(slug, percent)`` sets the canary share of the generated traffic (a file
under ``VAR_DIR/fleet-weights/``, the same one the releases' ``local`` driver writes; the
fleet re-reads it every 0.5 s), and ``set_behaviour_at(metrics_url, error_rate=...,
latency_ms=...)`` changes one instance directly over its ``/control`` endpoint (the URL is in
the service's ``metrics_urls``).
"""

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from django.conf import settings

from portal.procs import die_with_parent

ROOT = Path(__file__).resolve().parent.parent
# Releases (the `local` deploy driver) set a service's canary weight by writing an integer to
# ``<weights_dir>/<slug>``; a Fleet built with ``weights_dir`` reads it (cached for 0.5 s).
WEIGHTS_SUBDIR = "fleet-weights"


@dataclass
class FleetService:
    slug: str
    error_rate: float = 0.01
    latency_ms: float = 40.0
    canary_error_rate: float | None = None
    canary_latency_ms: float | None = None
    canary_weight: int = 10  # percent of traffic to canary
    tracks: tuple = ("stable", "canary")
    via: str = ""  # a load balancer's URL (HAProxy): traffic goes there, it picks the track


@dataclass
class Instance:
    service: str
    track: str
    port: int
    proc: subprocess.Popen | None = None
    host: str = "127.0.0.1"
    sent: dict = field(default_factory=lambda: {"ok": 0, "error": 0, "failed": 0})

    @property
    def base_url(self):
        return f"http://{self.host}:{self.port}"

    @property
    def metrics_url(self):
        return f"{self.base_url}/metrics"


def publish_weight(slug: str, canary_percent: int, weights_dir=None):
    """Ask a running demo fleet (any process) to send ``canary_percent`` % of traffic to canary."""
    if not 0 <= int(canary_percent) <= 100:
        raise ValueError("canary weight must be between 0 and 100")
    if weights_dir is None:
        weights_dir = settings.VAR_DIR / WEIGHTS_SUBDIR
    folder = Path(weights_dir)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{slug}.{os.getpid()}.tmp"
    tmp.write_text(str(int(canary_percent)))
    os.replace(tmp, folder / slug)  # atomic: readers never see a half-written file


def set_behaviour_at(metrics_url: str, *, error_rate=None, latency_ms=None) -> dict:
    """Change one running instance (found by its /metrics URL) over its /control endpoint."""
    base = metrics_url.rsplit("/metrics", 1)[0]
    body = {
        k: v for k, v in (("error_rate", error_rate), ("latency_ms", latency_ms)) if v is not None
    }
    resp = requests.post(f"{base}/control", json=body, timeout=2)
    resp.raise_for_status()
    return resp.json()


def free_port(host="127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _port_free(port, host="127.0.0.1") -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


class Fleet:
    def __init__(
        self,
        services,
        base_port: int | None = None,
        host="127.0.0.1",
        log_dir=None,
        weights_dir=None,
    ):
        self.services = {s.slug: s for s in services}
        self.weights_dir = Path(weights_dir) if weights_dir else None
        self._weights_read: dict[str, tuple[float, int | None]] = {}
        self.host = host
        self.base_port = base_port
        self.log_dir = Path(log_dir) if log_dir else None
        self.instances: dict[tuple[str, str], Instance] = {}
        self._traffic_thread = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    # --- processes ----------------------------------------------------------------------------
    def _next_port(self, used):
        if self.base_port is None:
            return free_port(self.host)
        port = self.base_port
        while port in used or not _port_free(port, self.host):
            port += 1
        return port

    def start(self, timeout=15.0):
        used = set()
        for svc in self.services.values():
            for track in svc.tracks:
                port = self._next_port(used)
                used.add(port)
                inst = Instance(svc.slug, track, port, host=self.host)
                self._spawn(inst, svc)
                self.instances[(svc.slug, track)] = inst
        self.wait_ready(timeout)
        return self

    def _spawn(self, inst: Instance, svc: FleetService):
        canary = inst.track == "canary"
        err = (
            svc.canary_error_rate
            if canary and svc.canary_error_rate is not None
            else svc.error_rate
        )
        lat = (
            svc.canary_latency_ms
            if canary and svc.canary_latency_ms is not None
            else svc.latency_ms
        )
        out = subprocess.DEVNULL
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"fleet-{inst.service}-{inst.track}.log", "ab")  # noqa: SIM115
        inst.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "monitoring.fleet_app",
                "--service",
                inst.service,
                "--track",
                inst.track,
                "--port",
                str(inst.port),
                "--host",
                inst.host,
                "--error-rate",
                str(err),
                "--latency-ms",
                str(lat),
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - a killed fleet leaves no instance behind
        )

    def wait_ready(self, timeout=15.0):
        deadline = time.monotonic() + timeout
        for inst in self.instances.values():
            while True:
                if inst.proc.poll() is not None:
                    raise RuntimeError(
                        f"{inst.service}/{inst.track} exited with {inst.proc.returncode}"
                    )
                try:
                    if requests.get(f"{inst.base_url}/healthz", timeout=0.5).ok:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{inst.service}/{inst.track} not ready on port {inst.port}")
                time.sleep(0.05)

    def restart(self, slug, track="stable", timeout=10.0):
        """Kill and start one instance again (its counters reset to zero)."""
        inst = self.instances[(slug, track)]
        _terminate(inst.proc)
        self._spawn(inst, self.services[slug])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{inst.base_url}/healthz", timeout=0.5).ok:
                    return inst
            except requests.RequestException:
                time.sleep(0.05)
        raise RuntimeError(f"{slug}/{track} did not come back")

    def stop(self):
        self.stop_traffic()
        for inst in self.instances.values():
            if inst.proc is not None:
                _terminate(inst.proc)

    def alive(self) -> bool:
        return all(i.proc is not None and i.proc.poll() is None for i in self.instances.values())

    # --- control ------------------------------------------------------------------------------
    def metrics_urls(self, slug) -> list[dict]:
        return [
            {"url": inst.metrics_url, "track": track}
            for (s, track), inst in self.instances.items()
            if s == slug
        ]

    def set_weight(self, slug, canary_percent: int):
        if not 0 <= canary_percent <= 100:
            raise ValueError("canary weight must be between 0 and 100")
        with self._lock:
            self.services[slug].canary_weight = int(canary_percent)

    def set_behaviour(self, slug, track, *, error_rate=None, latency_ms=None):
        body = {}
        if error_rate is not None:
            body["error_rate"] = error_rate
        if latency_ms is not None:
            body["latency_ms"] = latency_ms
        inst = self.instances[(slug, track)]
        resp = requests.post(f"{inst.base_url}/control", json=body, timeout=2)
        resp.raise_for_status()
        return resp.json()

    def canary_weight(self, slug) -> int:
        """The weight set by a release (``weights_dir``) if any, else the configured one."""
        if self.weights_dir is not None:
            now = time.monotonic()
            at, value = self._weights_read.get(slug, (0.0, None))
            if now - at > 0.5:
                try:
                    value = max(0, min(100, int((self.weights_dir / slug).read_text().strip())))
                except (OSError, ValueError):
                    value = None
                self._weights_read[slug] = (now, value)
            if value is not None:
                return value
        return self.services[slug].canary_weight

    # --- traffic ------------------------------------------------------------------------------
    def send(self, slug, n=1, track=None, session=None):
        """Send ``n`` requests to a service, split by weight unless ``track`` is given."""
        http = session or requests
        svc = self.services[slug]
        if svc.via and track is None:
            self._send_via(svc, n, http)
            return
        for _ in range(n):
            tr = track
            if tr is None:
                svc = self.services[slug]
                tr = (
                    "canary"
                    if "canary" in svc.tracks and random.random() * 100 < self.canary_weight(slug)
                    else "stable"
                )
            inst = self.instances[(slug, tr)]
            try:
                r = http.get(f"{inst.base_url}/", timeout=2)
                inst.sent["error" if r.status_code >= 500 else "ok"] += 1
            except requests.RequestException:
                inst.sent["failed"] += 1

    def _send_via(self, svc: FleetService, n: int, http) -> None:
        """Through the load balancer: the answering instance says which track it is."""
        for _ in range(n):
            try:
                r = http.get(f"{svc.via}/", timeout=2)
                track = r.headers.get("X-Track") or "stable"
                inst = self.instances.get((svc.slug, track))
                if inst is not None:
                    inst.sent["error" if r.status_code >= 500 else "ok"] += 1
            except requests.RequestException:
                pass

    def start_traffic(self, rps: float = 5.0):
        """Background thread: ``rps`` requests per second to each service (Poisson arrivals)."""
        self._stop.clear()

        def loop():
            with requests.Session() as session:
                while not self._stop.is_set():
                    for slug in list(self.services):
                        self.send(slug, 1, session=session)
                    self._stop.wait(random.expovariate(rps))

        self._traffic_thread = threading.Thread(target=loop, name="fleet-traffic", daemon=True)
        self._traffic_thread.start()

    def stop_traffic(self):
        self._stop.set()
        if self._traffic_thread is not None:
            self._traffic_thread.join(5)
            self._traffic_thread = None


def _terminate(proc: subprocess.Popen, grace=3.0):
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)
