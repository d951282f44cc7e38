"""`python manage.py run_portal` (what `make run` calls): everything Backline needs, in one
terminal.

1. With no REDIS_URL, start the embedded Redis under var/ (stopped again at exit).
2. migrate, collectstatic (when static files changed), seed_demo.
3. Start the children, each in its own process group, output prefixed with its name:
   web (gunicorn, or runserver if gunicorn is missing), worker and beat (Celery), and the
   monitoring demo fleet when it exists and BACKLINE_DEMO_FLEET is not "0". With the fleet,
   worker and beat start once it is ready (its history back-filled, its endpoints
   registered): the back-fill has SQLite to itself, and no release tick finds a demo service
   without its instances.
4. Print the URL and the demo logins, then watch: Ctrl-C / SIGTERM stops every child (TERM,
   grace period, KILL) and exits 0; a child that dies on its own stops everything (exit 1).
"""

import hashlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles.finders import get_finders
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connections

from portal import embedded_redis
from portal.procs import die_with_parent
from portal.registry import startup_problems

GRACE_SECONDS = 10
WEB_READY_TIMEOUT = 180


# what `demo_fleet` prints once its history is back-filled and its endpoints registered: the
# banner waits for it, so the first page a new user opens has live charts
FLEET_READY = "demo fleet running"
# the start of the SecurityWarning a Celery worker started as root gives (celery.platforms)
CELERY_ROOT_WARNING = "You're running the worker with superuser privileges"


class Child:
    def __init__(self, name, argv, ready_line="", after=""):
        self.name = name
        self.argv = argv
        self.proc = None
        self.reader = None
        self.ready_line = ready_line  # the banner waits for this line of its output
        self.ready = not ready_line
        self.after = after  # started once that child is ready (or the banner's deadline passed)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class Command(BaseCommand):
    help = "Migrate, load demo data and run web + Celery worker + beat; Ctrl-C stops all."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument(
            "--port", type=int, default=None, help="Web port (default $PORT or 8000)"
        )
        parser.add_argument("--no-seed", action="store_true", help="Do not load the demo data")

    @property
    def log_level(self) -> str:
        """What the children log: warnings and the banner by default (BACKLINE_LOG_LEVEL)."""
        return settings.BACKLINE_LOG_LEVEL

    @property
    def quiet(self) -> list[str]:
        return [] if self.log_level in ("DEBUG", "INFO") else ["--quiet"]  # no Celery banners

    # --- output -----------------------------------------------------------------------------
    def setup_output(self):
        self._lock = threading.Lock()
        self._width = 6

    def emit(self, text):
        with self._lock:
            try:
                sys.stdout.write(text if text.endswith("\n") else text + "\n")
                sys.stdout.flush()
            except (BrokenPipeError, ValueError):
                pass

    def say(self, text):
        self.emit(f"{'portal':<{self._width}} | {text}")

    def _pump(self, child):
        prefix = f"{child.name:<{self._width}} | "
        for raw in iter(child.proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if child.ready_line and child.ready_line in line:
                child.ready = True
            self.emit(prefix + line)
        child.proc.stdout.close()

    # --- main -------------------------------------------------------------------------------
    def handle(self, *args, port=None, no_seed=False, **options):
        self.setup_output()
        self.port = port or int(os.environ.get("PORT") or 8000)
        self.stopping = None  # the reason, once shutdown began
        self.children = []
        self.started_redis = False
        previous = {
            sig: signal.signal(sig, self._on_signal)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        }
        exit_code = 0
        self.exit_code = 0
        if _port_open(self.port):
            self.say(f"port {self.port} is already in use; set PORT to another port")
            sys.exit(2)
        try:
            self.prepare(no_seed)
            if self.stopping is None:
                self.start_children()
                exit_code = self.watch()
            exit_code = exit_code or self.exit_code
        finally:
            self.stop_children()
            if self.started_redis:
                embedded_redis.stop()
                self.say("embedded Redis stopped")
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.say("stopped" + (" (a child exited unexpectedly)" if exit_code else ""))
        if exit_code:
            sys.exit(exit_code)

    def _on_signal(self, signum, frame):
        if self.stopping is None:
            self.stopping = signal.Signals(signum).name
            if not self.children:
                # Still migrating / seeding: interrupt that work right away.
                raise KeyboardInterrupt
        elif signum == signal.SIGINT:
            self.stopping = "force"  # second Ctrl-C: no more grace

    # --- steps ------------------------------------------------------------------------------
    def prepare(self, no_seed):
        if "BACKLINE_OUTBOUND_ALLOW" not in os.environ:  # seeding runs in this process
            settings.OUTBOUND_ALLOW = demo_outbound_allow()
        db = settings.DATABASES["default"]
        where = f"{db['HOST']}/{db['NAME']}" if db.get("HOST") else str(db["NAME"])
        self.say(f"database: {db['ENGINE'].rsplit('.', 1)[-1]} {where}")
        if getattr(settings, "USING_EMBEDDED_REDIS", False):
            sock = Path(settings.EMBEDDED_REDIS_SOCKET)
            if embedded_redis.is_running(sock):
                # Left over from a run that was killed: this run owns var/, so adopt it.
                self.say(f"embedded Redis already running at {sock}; using it")
            else:
                embedded_redis.ensure_running()
                self.say(f"embedded Redis started at {sock}")
            self.started_redis = True  # stopped at exit either way
        else:
            self.say(f"redis: {settings.REDIS_URL.split('@')[-1]}")
        try:
            self.say("migrating the database")
            call_command("migrate", interactive=False, verbosity=0)
            self.collectstatic()
            if settings.PRODUCTION:
                self.say("BACKLINE_PRODUCTION is true: not loading the demo organisation")
            elif not no_seed and os.environ.get("BACKLINE_SEED_DEMO", "1") != "0":
                self.say("loading the demo organisation (seed_demo)")
                call_command("seed_demo", stdout=_Prefixed(self.say))
            if settings.PRODUCTION and (problems := startup_problems()):
                for problem in problems:
                    self.say(f"refusing to start: {problem}")
                self.stopping = "unsafe"
                self.exit_code = 2
        except KeyboardInterrupt:
            self.say("interrupted before start")
        finally:
            connections.close_all()

    def collectstatic(self):
        digest = hashlib.sha256()
        for finder in get_finders():
            for path, storage in finder.list([]):
                full = storage.path(path)
                st = os.stat(full)
                digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        stamp = Path(settings.STATIC_ROOT) / ".backline-static-stamp"
        if stamp.exists() and stamp.read_text() == digest.hexdigest():
            return
        self.say("collecting static files")
        call_command("collectstatic", interactive=False, verbosity=0)
        stamp.write_text(digest.hexdigest())

    def web_argv(self) -> list[str]:
        """gunicorn when installed, else Django's runserver."""
        py = sys.executable
        if importlib.util.find_spec("gunicorn") is None:
            manage = str(Path(settings.BASE_DIR) / "manage.py")
            return [py, manage, "runserver", "--noreload", _bind(self.port)]
        web = [py, "-m", "gunicorn", "portal.wsgi", "--bind", _bind(self.port)]
        web += ["--workers", os.environ.get("WEB_WORKERS", "2")]
        web += ["--threads", os.environ.get("WEB_THREADS", "4")]
        web += ["--graceful-timeout", str(GRACE_SECONDS - 2), "--timeout", "120"]
        web += ["--error-logfile", "-", "--log-level", self.log_level.lower()]
        if _gunicorn_has("control_socket_disable"):
            # gunicorn 24+ opens ~/.gunicorn/gunicorn.ctl, shared by every gunicorn of
            # the user; we need no control interface.
            web.append("--no-control-socket")
        return web

    def celery_specs(self) -> list["Child"]:
        celery = [sys.executable, "-m", "celery", "-A", "portal"]
        level = f"--loglevel={self.log_level}"
        beat_file = str(settings.CELERY_BEAT_SCHEDULE_FILENAME)
        return [
            Child("worker", [*celery, *self.quiet, "worker", "-c", "2", level]),
            Child("beat", [*celery, *self.quiet, "beat", level, "-s", beat_file]),
        ]

    def child_specs(self):
        specs = [Child("web", self.web_argv())]
        celery = self.celery_specs()
        if os.environ.get("BACKLINE_DEMO_FLEET", "1") != "0" and _module_exists(
            "monitoring.management.commands.demo_fleet"
        ):
            manage = str(Path(settings.BASE_DIR) / "manage.py")
            # -v 0: only its ready line and warnings (an instance restarted), as the others
            fleet = [sys.executable, manage, "demo_fleet", *(["-v", "0"] if self.quiet else [])]
            specs.append(Child("fleet", fleet, FLEET_READY))
            for child in celery:
                child.after = "fleet"
        return specs + celery

    def start_children(self):
        self.pending = []  # children waiting for another one to be ready
        self.env = self.child_env()
        for child in self.child_specs():
            if child.after:
                self.pending.append(child)
            else:
                self.start(child)

    def start_pending(self, deadline_passed=False):
        ready = {c.name for c in self.children if c.ready}
        for child in [c for c in self.pending if deadline_passed or c.after in ready]:
            self.pending.remove(child)
            self.start(child)

    def child_env(self) -> dict:
        env = dict(os.environ)
        # the embedded demo reaches its own fleet (loopback) and demo repositories (var/)
        env.setdefault("BACKLINE_OUTBOUND_ALLOW", ",".join(demo_outbound_allow()))
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
        env["BACKLINE_VAR_DIR"] = str(settings.VAR_DIR)
        env["LOG_LEVEL"] = self.log_level  # Django's root logger in every child
        if self.quiet:
            # Celery warns at every worker start when it runs as root (a container, a dev VM):
            # nothing `make run`'s user can act on, and 8 lines of the terminal
            env["PYTHONWARNINGS"] = ",".join(
                filter(None, [env.get("PYTHONWARNINGS"), f"ignore:{CELERY_ROOT_WARNING}"])
            )
        return env

    def start(self, child: Child) -> None:
        child.proc = subprocess.Popen(
            child.argv,
            cwd=settings.BASE_DIR,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: we stop it as a whole
            preexec_fn=die_with_parent,  # noqa: PLW1509 - and it ends if we are killed
        )
        child.reader = threading.Thread(target=self._pump, args=(child,), daemon=True)
        child.reader.start()
        self.children.append(child)
        self.say(f"started {child.name} (pid {child.pid}): {' '.join(child.argv[1:])}")

    def watch(self):
        deadline = time.monotonic() + WEB_READY_TIMEOUT
        announced = waiting = False
        while self.stopping is None:
            for child in self.children:
                if not child.alive():
                    self.say(
                        f"{child.name} (pid {child.pid}) exited unexpectedly with code "
                        f"{child.proc.returncode}; stopping everything"
                    )
                    return 1
            if self.pending:
                self.start_pending(deadline_passed=time.monotonic() > deadline)
            if not announced:
                web_up = _port_open(self.port)
                if web_up and (all(c.ready for c in self.children) or time.monotonic() > deadline):
                    self.banner()
                    announced = True
                elif web_up and not waiting:
                    waiting = True
                    self.say("web is up; waiting for the demo fleet (back-filling its history)")
                elif time.monotonic() > deadline:
                    self.say(f"web did not listen on port {self.port} in {WEB_READY_TIMEOUT}s")
                    return 1
            time.sleep(0.2)
        return 0

    def banner(self):
        url = f"http://{_local_host()}:{self.port}/"
        bind = settings.BIND_ADDRESS
        if bind in ("127.0.0.1", "localhost", "::1"):
            where = [
                f"  Listening on {bind} only: other machines cannot reach it",
                "  (BACKLINE_BIND=0.0.0.0 to listen on every address).",
            ]
        else:
            where = [
                f"  Listening on {bind} (BACKLINE_BIND): anyone who reaches this machine",
                "  can sign in with the demo logins below. Unset BACKLINE_BIND to keep it local.",
            ]
        lines = [
            "",
            "=" * 64,
            f"  Backline is running at {url}",
            *where,
            "",
            "  Demo logins (username / password):",
            "    admin   / backline-admin   org admin (also /admin/)",
            "    alice   / backline-demo    lead of the playback squad",
            "    bob     / backline-demo    member of the search squad",
            "    charlie / backline-demo    viewer, no squad",
            "",
            f"  API docs:  {url}api/docs/   (OpenAPI schema: {url}api/schema/)",
            f"  Health:    {url}healthz     Metrics: {url}metrics",
            "  Press Ctrl-C to stop web, worker and beat.",
            "=" * 64,
            "",
        ]
        for line in lines:
            self.say(line)

    def stop_children(self):
        running = [c for c in self.children if c.proc is not None]
        if not running:
            return
        self.say(f"stopping {', '.join(c.name for c in running)}")
        for child in running:
            _killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_SECONDS
        while time.monotonic() < deadline and self.stopping != "force":
            if not any(c.alive() for c in running):
                break
            time.sleep(0.1)
        for child in running:
            if child.alive():
                self.say(f"{child.name} (pid {child.pid}) did not stop in time; killing it")
            # KILL the whole group even when its leader is gone: no orphans left behind.
            _killpg(child.pid, signal.SIGKILL)
            try:
                child.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.say(f"{child.name} (pid {child.pid}) still there after SIGKILL")
        for child in running:
            if child.reader is not None:
                child.reader.join(2)
            self.say(f"{child.name} stopped (exit code {child.proc.returncode})")


class _Prefixed:
    """A file-like object for call_command(stdout=...) that prints through ``say``."""

    def __init__(self, say):
        self._say = say
        self._buf = ""

    def write(self, text):
        self._buf += text
        while "\n" in self._buf:
            line, self._buf = self._buf.split("\n", 1)
            self._say(line)

    def flush(self):
        if self._buf:
            self._say(self._buf)
            self._buf = ""


def demo_outbound_allow() -> list[str]:
    """What ``make run`` lets the outbound URL guard reach unless BACKLINE_OUTBOUND_ALLOW is
    set: loopback (the demo fleet, the local deploy driver) and the demo git repositories."""
    return ["127.0.0.0/8", "::1/128", f"file:{settings.VAR_DIR / 'demo-repos'}"]


def _module_exists(name):
    """Is ``name`` importable? (A dotted name's parents are checked first: ``find_spec`` of
    ``a.b`` imports ``a``.)"""
    parts = name.split(".")
    return all(
        importlib.util.find_spec(".".join(parts[: i + 1])) is not None for i in range(len(parts))
    )


def _gunicorn_has(setting):
    if not _module_exists("gunicorn.config"):
        return False
    # imported here: gunicorn is optional for `run_portal` (runserver serves without it)
    from gunicorn.config import KNOWN_SETTINGS

    return any(s.name == setting for s in KNOWN_SETTINGS)


def _bind(port):
    """gunicorn's / runserver's --bind for BACKLINE_BIND (default 127.0.0.1: this machine only)."""
    host = settings.BIND_ADDRESS
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _local_host():
    """Where this machine reaches the web server."""
    host = settings.BIND_ADDRESS
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _port_open(port):
    host = _local_host()
    try:
        with socket.create_connection((host.strip("[]"), port), timeout=0.5):
            return True
    except OSError:
        return False


def _killpg(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
