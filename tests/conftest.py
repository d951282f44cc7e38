"""Shared fixtures: personas, API clients, a real Celery worker, Chromium via Playwright.

Personas (as in DESIGN.md): alice owns (member of squad ``playback``), bob is a member of
another squad (``search``), charlie is a signed-in viewer with no squad, admin is an org admin.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from portal import crypto
from portal.models import ApiToken
from tests.factories import (
    MembershipFactory,
    PersonFactory,
    SquadFactory,
    TribeFactory,
    UserFactory,
)

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("BACKLINE_SHARED_DIR", ROOT.parent / "shared"))
DATA = SHARED / "data"
CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
PASSWORD = "pw-for-tests-1"

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
# Terraform tests read "upstream" states from this folder: the test installation's read-only
# path for Terraform (BACKLINE_TERRAFORM_READ_PATHS); workers started by the tests inherit it
TF_READ_PATH = Path(tempfile.gettempdir()) / f"backline-tf-published-{os.getpid()}"
TF_READ_PATH.mkdir(mode=0o755, exist_ok=True)
os.environ["BACKLINE_TERRAFORM_READ_PATHS"] = str(TF_READ_PATH)  # Playwright's sync API runs a loop

# Secrets at rest (portal.crypto): the keys this test process uses (its var/secrets.key unless
# BACKLINE_SECRETS_KEY is set), exported so the workers, servers and commands the tests start,
# whatever their BACKLINE_VAR_DIR, read what this process wrote
os.environ["BACKLINE_SECRETS_KEY"] = ",".join(crypto.keys())


# The test installation's outbound URL guard allows loopback (the suite's servers, fake GitHub,
# Prometheus...) and local git remotes under the temp folder (test repositories); workers
# started by the tests inherit it
OUTBOUND_ALLOW = ["127.0.0.0/8", "::1/128", f"file:{tempfile.gettempdir()}"]
os.environ["BACKLINE_OUTBOUND_ALLOW"] = ",".join(OUTBOUND_ALLOW)


def _scan_static_files_once():
    """WhiteNoise (``WHITENOISE_USE_FINDERS``) stats and reads the headers of every static file
    of every app each time a middleware chain is built, which a Django test client does per
    client: ~30 ms (80 ms on a loaded machine) a client, thousands of clients a suite run. The
    test process scans them once per finder setup and hands every new middleware the same
    answers (the files do not change while the suite runs)."""
    from whitenoise.middleware import WhiteNoiseMiddleware

    scan = WhiteNoiseMiddleware.add_files_from_finders
    scanned: dict[tuple, dict] = {}

    def add_files_from_finders(self):
        key = (
            self.static_prefix,
            self.max_age,
            self.allow_all_origins,
            self.charset,
            tuple(str(d) for d in settings.STATICFILES_DIRS),
            tuple(settings.INSTALLED_APPS),
            tuple(settings.STATICFILES_FINDERS),
        )
        if key not in scanned:
            before = dict(self.files)
            scan(self)
            scanned[key] = {u: f for u, f in self.files.items() if before.get(u) is not f}
        self.files.update(scanned[key])

    WhiteNoiseMiddleware.add_files_from_finders = add_files_from_finders  # type: ignore[method-assign]


_scan_static_files_once()


@pytest.fixture(autouse=True)
def _outbound_allow(settings):
    settings.OUTBOUND_ALLOW = list(OUTBOUND_ALLOW)
    settings.OUTBOUND_DENY = []


@pytest.fixture(autouse=True)
def _fresh_catalog_cache():
    """Each test starts a new catalog cache generation: the test database is rolled back
    between tests, Redis is not, so rows cached by an earlier test must not be found."""
    from django.core.cache import cache

    from squads.cache import CATALOG

    cache.delete(CATALOG.key)


@pytest.fixture(autouse=True)
def _terraform_read_paths(settings):
    """Upstream states in TF_READ_PATH are readable by in-process Terraform runs too."""
    settings.TERRAFORM_READ_PATHS = [str(TF_READ_PATH)]


@pytest.fixture
def shared_data():
    assert DATA.is_dir(), f"shared sample data not found at {DATA}"
    return DATA


# --- personas -----------------------------------------------------------------------------------
@pytest.fixture
def tribe(db):
    return TribeFactory(slug="audio", name="Audio")


@pytest.fixture
def squad(db, tribe):
    return SquadFactory(slug="playback", name="Playback", tribe=tribe)


@pytest.fixture
def other_squad(db, tribe):
    return SquadFactory(slug="search", name="Search", tribe=tribe)


def _person_user(username, squad=None, role="member", **user_kwargs):
    user = UserFactory(username=username, **user_kwargs)
    person = PersonFactory(slug=username, name=username.title(), user=user)
    if squad is not None:
        MembershipFactory(person=person, squad=squad, role=role)
    return user


@pytest.fixture
def alice(squad):
    return _person_user("alice", squad, role="lead")


@pytest.fixture
def bob(other_squad):
    return _person_user("bob", other_squad)


@pytest.fixture
def charlie(db):
    return _person_user("charlie")


@pytest.fixture
def admin_user(db):
    return _person_user("admin", is_staff=True, is_superuser=True)


@pytest.fixture
def make_token(db):
    def make(squad, scopes=(), expires_at=None, name="bot"):
        token, raw = ApiToken.generate(
            squad=squad, name=name, scopes=list(scopes), expires_at=expires_at
        )
        return raw

    return make


@pytest.fixture
def api():
    """An unauthenticated DRF client; use .credentials(HTTP_AUTHORIZATION=...) or force_login."""
    return APIClient()


def client_for(user):
    c = APIClient()
    c.force_login(user)
    return c


def token_client(raw):
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return c


def pids_with_cmdline(needle: str) -> list[int]:
    """Live processes (not this one) whose command line contains ``needle``; a zombie's
    command line is empty."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                if needle.encode() in fh.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


# --- a real Celery worker -----------------------------------------------------------------------
def _worker_env():
    db = settings.DATABASES["default"]
    env = dict(os.environ)
    env["DATABASE_URL"] = (
        f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )
    env["REDIS_URL"] = settings.REDIS_URL
    env["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    env["BACKLINE_VAR_DIR"] = str(settings.VAR_DIR)
    env.pop("TEST_DATABASE_NAME", None)
    return env


class WorkerProcess:
    """`celery -A portal worker` as a real subprocess, against the test database and Redis."""

    def __init__(self, concurrency=2, extra_args=(), *, env=None, name="test"):
        self.concurrency = concurrency
        self.extra_args = list(extra_args)
        self.env = dict(env or {})  # on top of the test settings (e.g. another BACKLINE_VAR_DIR)
        self.name = name
        self.proc = None
        self.logfile = Path(settings.VAR_DIR) / f"{name}-worker-{os.getpid()}.log"

    def start(self, timeout=40):
        import redis

        redis.Redis.from_url(settings.REDIS_URL).flushdb()
        self.log = open(self.logfile, "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "portal",
                "worker",
                "-c",
                str(self.concurrency),
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
                "-n",
                f"{self.name}-{os.getpid()}@%h",
                *self.extra_args,
            ],
            cwd=ROOT,
            env={**_worker_env(), **self.env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early; see {self.logfile}")
            if b"ready." in self.logfile.read_bytes()[-20000:]:
                return self
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready in {timeout}s; see {self.logfile}")

    def child_pids(self):
        out = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True
        ).stdout
        return [int(p) for p in out.split()]

    def kill(self):
        """SIGKILL the whole worker process group (main process and pool children)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if getattr(self, "log", None):
            self.log.close()


@pytest.fixture(scope="session")
def drop_state_roles(django_db_setup, django_db_blocker):
    """The pg backend's per-workspace state roles are cluster-wide: drop this test database's
    ones before the database itself goes (other databases' roles are left alone). Autoused by
    the test folders that run Terraform (infra, chaos)."""
    yield
    from infra import tfstate

    with django_db_blocker.unblock():
        tfstate.drop_roles(tfstate.target().dbname)


@pytest.fixture
def celery_worker_proc(transactional_db):
    worker = WorkerProcess().start()
    yield worker
    worker.stop()


# --- Chromium via Playwright --------------------------------------------------------------------
SCREENSHOTS = ROOT / "tests" / "e2e" / "screenshots"


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}; run `make deps` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
            ],
        )
        yield b
        b.close()


def _as_function(wait_for_function):
    """Playwright evaluates a bare expression with eval() inside the page, which the CSP
    (rightly) refuses; the same expression as an arrow function is called, not evaluated."""

    def wait(expression, *args, **kwargs):
        if isinstance(expression, str) and "=>" not in expression:
            expression = f"() => ({expression})"
        return wait_for_function(expression, *args, **kwargs)

    return wait


@pytest.fixture
def page(browser):
    """A fresh page; the test fails if the page reported a Content-Security-Policy violation
    (an inline script, handler or eval the policy refused) while it ran."""
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(15000)
    violations: list[str] = []
    pg.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    pg.csp_violations = violations  # type: ignore[attr-defined]
    pg.wait_for_function = _as_function(pg.wait_for_function)  # type: ignore[method-assign]
    yield pg
    context.close()
    assert not violations, f"Content-Security-Policy violations: {violations}"


@pytest.fixture
def login(live_server):
    """login(page, user) signs the user in through the real sign-in form."""

    def do(pg, user):
        pg.goto(f"{live_server.url}/login/")
        pg.fill("#id_username", user.username)
        pg.fill("#id_password", PASSWORD)
        pg.click("button[type=submit]")
        pg.wait_for_url(f"{live_server.url}/")
        return pg

    return do


def screenshot(pg, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    pg.screenshot(path=str(path), full_page=True)
    return path


# --- the order files go to the xdist workers (`make test`: -n 2 --dist loadfile) ------------------
# The files that run longest, longest first (measured loaded-run totals): xdist's own order (by
# number of tests per file, ``--loadscope-reorder``) sends a long file of one or two tests to a
# worker last, and the other worker waits for it with nothing to do. Started first, they run
# beside the many short files, which then fill both workers to the end. `make test` passes
# --no-loadscope-reorder so that this order is the one the workers get.
SLOW_FILES_FIRST = [
    "tests/test_run_portal.py",  # ~300 s
    "tests/test_fuzz_api.py",  # ~130 s
    "tests/identity/test_scim_fuzz.py",  # ~60 s
    "tests/test_permission_matrix.py",
    "tests/test_seed_demo.py",  # ~40 s
    "tests/github/test_discovery.py",  # ~35 s
    "tests/test_nested_bodies.py",
    "tests/pipelines/test_octokit_webhooks.py",
    "tests/github/test_pull_requests.py",
]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """On an xdist worker: files in SLOW_FILES_FIRST order, then the rest by number of tests
    (xdist's order); a file's tests keep their order (pytest-django's: plain database tests,
    then transactional ones, then the others). A run in one process keeps pytest-django's order."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    per_file: dict[str, list[int]] = {}  # path: [tests, index of its first test]
    for i, item in enumerate(items):
        path = item.nodeid.split("::", 1)[0]
        per_file.setdefault(path, [0, i])[0] += 1
    rank = {path: i for i, path in enumerate(SLOW_FILES_FIRST)}

    def file_order(item):
        path = item.nodeid.split("::", 1)[0]
        count, first = per_file[path]
        return (rank.get(path, len(rank)), -count, first)

    items.sort(key=file_order)
