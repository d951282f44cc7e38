"""Release fixtures: a local deployer HTTP server (the webhook driver's counterpart, checking
signatures), a real demo fleet with traffic and a scraper thread (the `local` driver and the
builtin backend), environments, and helpers to drive the controller like beat does."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings
from django.db import connection

from monitoring.fleet import WEIGHTS_SUBDIR, Fleet, FleetService
from portal.outbound import verify_signature
from releases import controller, sync
from releases.models import Environment, Release
from tests.factories import ServiceFactory

SECRET = "deployer-secret-1"


class Deployer:
    """A deployer receiving Backline's signed webhook calls. ``mode``: ok | fail | slow | hold."""

    def __init__(self):
        self.calls = []  # every attempt: dict(action, weight, valid, delivery)
        self.mode = "ok"
        self.slow_seconds = 2.0
        self.slow_on = None  # (action, weight) to delay, or None for all
        # mode "hold": the call matching slow_on sets ``holding`` and waits for ``release``
        self.holding = threading.Event()
        self.release = threading.Event()
        self.weight = 0
        self.lock = threading.Lock()
        deployer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                valid = verify_signature(body, self.headers.get("X-Backline-Signature", ""), SECRET)
                data = json.loads(body or b"{}")
                call = {
                    "action": data.get("action"),
                    "weight": data.get("weight"),
                    "release": data.get("release", {}),
                    "valid": valid,
                    "delivery": self.headers.get("X-Backline-Delivery"),
                    "event": self.headers.get("X-Backline-Event"),
                }
                with deployer.lock:
                    deployer.calls.append(call)
                    mode = deployer.mode
                if not valid:
                    return self._send(401, {"error": "bad signature"})
                if mode == "fail":
                    return self._send(500, {"error": "deployer exploded"})
                if mode == "slow" and (
                    deployer.slow_on is None or deployer.slow_on == (call["action"], call["weight"])
                ):
                    time.sleep(deployer.slow_seconds)
                if mode == "hold" and deployer.slow_on == (call["action"], call["weight"]):
                    deployer.holding.set()
                    deployer.release.wait(300)
                if call["action"] in ("set_weight", "promote", "rollback"):
                    deployer.weight = 0 if call["action"] != "set_weight" else call["weight"]
                return self._send(200, {"ok": True, "weight": deployer.weight, "healthy": True})

            def _send(self, code, obj):
                raw = json.dumps(obj).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except OSError:
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/deploy"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def actions(self, action=None):
        with self.lock:
            return [c for c in self.calls if action is None or c["action"] == action]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def deployer():
    d = Deployer()
    yield d
    d.stop()


@pytest.fixture
def default_environments(db):
    """staging and production and the built-in analysis templates, as the migration makes them
    (a transactional test run earlier in the same process flushes migration data)."""
    from releases.analysis import DEFAULT_TEMPLATES
    from releases.models import AnalysisTemplate

    for order, (name, prod) in enumerate((("staging", False), ("production", True))):
        Environment.objects.get_or_create(
            name=name, defaults={"title": name.title(), "order": order, "production": prod}
        )
    for name, spec in DEFAULT_TEMPLATES.items():
        AnalysisTemplate.objects.get_or_create(name=name, defaults=spec)


@pytest.fixture
def webhook_env(db, deployer):
    env, _ = Environment.objects.update_or_create(
        name="hooked",
        defaults={
            "driver": "webhook",
            "driver_config": {
                "url": deployer.url,
                "secret": SECRET,
                "timeout": 0.5,
                "retries": 1,
            },
        },
    )
    return env


@pytest.fixture
def local_env(db):
    env, _ = Environment.objects.update_or_create(
        name="staging", defaults={"driver": "local", "driver_config": {}}
    )
    return env


@pytest.fixture
def playback_api(squad):
    return ServiceFactory(slug="playback-api", name="Playback API", owner=squad)


# steps that stop at a pause right away (no analysis): for action, permission and UI tests
PAUSING = [
    {"set_weight": 10},
    {"pause": {}},
    {"set_weight": 30},
    {"pause": {}},
    {"set_weight": 60},
    {"pause": {}},
]


@pytest.fixture
def paused_release(playback_api, webhook_env, alice):
    from portal.actors import Actor
    from releases import services

    def make(version="1.0.0", steps=PAUSING):
        r = settle(
            services.create_release(
                playback_api,
                actor=Actor(user=alice, door="ui"),
                environment=webhook_env,
                version=version,
                steps=steps,
            )
        )
        assert r.status == "paused", (r.status, r.message, r.driver_error)
        return r

    return make


# --- real traffic: the demo fleet, the builtin backend ------------------------------------------
class Traffic:
    """A fleet for one service with a traffic generator and a scraper thread (builtin backend)."""

    def __init__(self, service, rps=40.0):
        self.service = service
        self.fleet = Fleet(
            [FleetService(service.slug, error_rate=0.0, latency_ms=20)],
            weights_dir=settings.VAR_DIR / WEIGHTS_SUBDIR,
        )
        self.rps = rps
        self._stop = threading.Event()
        self.scrapes = 0

    def start(self, traffic=True):
        (settings.VAR_DIR / WEIGHTS_SUBDIR / self.service.slug).unlink(missing_ok=True)
        self.fleet.start()
        self.service.metrics_urls = self.fleet.metrics_urls(self.service.slug)
        self.service.save(update_fields=["metrics_urls"])
        if traffic:
            # a few senders (the fleet's own generator is one thread, paced by the replies)
            self.senders = [threading.Thread(target=self._send, daemon=True) for _ in range(3)]
            for t in self.senders:
                t.start()
        self.scraper = threading.Thread(target=self._scrape, daemon=True)
        self.scraper.start()
        return self

    def _send(self):
        import requests

        with requests.Session() as session:
            while not self._stop.is_set():
                self.fleet.send(self.service.slug, 1, session=session)
                self._stop.wait(3.0 / self.rps)

    def _scrape(self):
        from metrics.scrape import scrape_service
        from squads.models import Service

        try:
            while not self._stop.is_set():
                scrape_service(Service.objects.get(pk=self.service.pk))
                self.scrapes += 1
                self._stop.wait(0.5)
        finally:
            connection.close()

    def sent(self, track):
        inst = self.fleet.instances[(self.service.slug, track)]
        return inst.sent["ok"] + inst.sent["error"]

    def stop(self):
        self._stop.set()
        for t in getattr(self, "senders", []):
            t.join(5)
        self.fleet.stop()
        if getattr(self, "scraper", None):
            self.scraper.join(5)


@pytest.fixture
def traffic(transactional_db, playback_api):
    made = []

    def start(rps=40.0, with_traffic=True):
        t = Traffic(playback_api, rps=rps).start(traffic=with_traffic)
        made.append(t)
        return t

    yield start
    for t in made:
        t.stop()


def wait_for_traffic(service, window=5.0, timeout=20.0):
    """Until the builtin backend has seen requests on both tracks (scrapes are in)."""
    from metrics.backends import get_backend

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = time.time()
        data = get_backend().golden_signals(service, ["stable", "canary"], now - 1, now, 1, window)
        rates = [
            next((v for _, v in reversed(data[t]["request_rate"]) if v is not None), None)
            for t in ("stable", "canary")
        ]
        if all(r for r in rates):
            return rates
        time.sleep(0.3)
    raise AssertionError(f"no traffic seen for {service.slug} in {timeout}s")


def settle(release):
    """What the worker does after an action commits (``advance_release``): hand the wanted
    driver calls to the driver until none is left or one waits for a retry. The fresh row."""
    sync.sync(release.pk)
    return Release.objects.get(pk=release.pk)


def drive_until(release, predicate, timeout=30.0, every=0.25):
    """Tick the controller like beat does (and apply the driver calls it wants, as its
    workers would) until ``predicate(release)`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        controller.tick_all()
        sync.sync(release.pk)
        r = Release.objects.get(pk=release.pk)
        if predicate(r):
            return r
        if time.monotonic() > deadline:
            raise AssertionError(
                f"release {r.pk} stuck: status={r.status} step={r.step_index} weight={r.weight} "
                f"message={r.message!r} driver_error={r.driver_error!r}"
            )
        time.sleep(every)
