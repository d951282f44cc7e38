"""The catalog at scale: 10,000 services (``BENCH_SCALE=100000`` for the large run) served by
gunicorn on PostgreSQL, loaded by ``wrk`` from a second process, each page next to a bare Django
view rendering a template of the same size, in the same run.

Throughput is measured at saturation (wrk with as many connections as gunicorn has threads);
p95 latency with as many clients as gunicorn has processes (at saturation a closed-loop p95 is
only queueing: connections / throughput, for the bare view as much as for Backline's pages).

The catalog page, search and API list are served from the catalog cache (squads/cache.py):
rows are rendered once per catalog change, so the throughput figures are cache hits once wrk
has seen each URL. The same pages are also measured on a second gunicorn with the cache off
(``CATALOG_CACHE_SECONDS=0``: every request does a miss's work), and the catalog page while a
service is edited every second (each edit invalidates every cached page).

Seeding uses COPY into a throwaway database ``bench_backline_catalog`` (migrated, dropped at the
end): services, squads (scale / 10), tribes, people and memberships (6 per squad, one lead),
systems, tags, dependencies (2 per service). SQL queries per page are counted with the test
client at two catalog sizes (scale / 10 and scale) and must be equal.

Environment: ``BENCH_SCALE`` (default 10000), ``BENCH_WRK_SECONDS`` (default 8 per figure),
``BENCH_KEEP_DB=1`` keeps the database for profiling.
"""

import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

DB_NAME = "bench_backline_catalog"  # bench_db("catalog") once settings are read (run())
ROOT = Path(__file__).resolve().parents[2]
SCALE = int(os.environ.get("BENCH_SCALE", "10000"))
WRK_SECONDS = int(os.environ.get("BENCH_WRK_SECONDS", "8"))
WORKERS, THREADS = 2, 4
LATENCY_CLIENTS = WORKERS
# wrk's connections at saturation, and the most one gunicorn worker takes: without a cap, the
# worker that wins the accept race takes every connection wrk opens at once and the other
# idles (seen: the same page at 484 req/s with both workers busy, then 230-250 with one, run
# after run), so throughput figures measured one core or two by chance. Capped at half the
# connections plus its threads, each worker holds at least THREADS of them: both saturated.
SATURATION = WORKERS * THREADS * 4
WORKER_CONNECTIONS = SATURATION // WORKERS + THREADS
WORDS = (
    "playback audio stream playlist recommendation search payment identity billing ledger "
    "catalog artist album track podcast radio lyrics social share notification email push "
    "ads insights metrics royalty licence upload transcode cdn cache session profile follow "
    "queue shuffle offline sync device car speaker web mobile desktop partner label charts"
).split()
BARE = "bare signed-in Django view, same-size page"
CACHED = ("catalog page", "catalog search")  # HTML served from the (optional) catalog cache
RUN_EVERY = 0.1  # seconds between pipeline runs finishing in the churn measurement
WRITE_EVERY = 1.0  # seconds between edits in the read/write mix
LIFECYCLES = ("production", "production", "production", "experimental", "deprecated")
TYPES = ("service", "service", "service", "website", "library")
# Descriptions, names and tags draw from compound words ("royaltyledger"): each one occurs in
# well under 1 % of services, as a specific search term does in a real catalog.
VOCAB = [a + b for a in WORDS for b in WORDS if a != b]
TAGS = VOCAB[::7][:400]
SEARCH_TERMS = ("royaltyledger", "podcastcache transcodecdn", "svc-0042", "lyricsqueue", "Audiocdn")


# --- seeding ------------------------------------------------------------------------------------
def _copy(cur, model, columns, rows):
    table = model._meta.db_table
    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp:
        for row in rows:
            cp.write_row(row)


def _defaults(model, given):
    """Columns of ``model`` not in ``given`` (other apps may add some) with their defaults."""
    from django.db import models

    extra = {}
    for f in model._meta.concrete_fields:
        if f.primary_key or f.column in given:
            continue
        value = f.get_default()
        if isinstance(f, models.JSONField):
            value = json.dumps(value)
        extra[f.column] = value
    return extra


def seed(scale, rnd=None):
    """Fill the (empty) catalog with ``scale`` services; returns the seconds it took."""
    from django.db import connection
    from django.utils import timezone

    from squads.models import (
        Dependency,
        Membership,
        Person,
        Service,
        Squad,
        System,
        Tag,
        Tribe,
    )

    rnd = rnd or random.Random(42)
    n_squads = max(scale // 10, 10)
    n_tribes = max(n_squads // 10, 3)
    n_systems = max(scale // 20, 5)
    n_people = n_squads * 6
    n_deps = scale * 2
    now = timezone.now()
    start = time.perf_counter()
    with connection.cursor() as c:
        tables = ", ".join(
            m._meta.db_table
            for m in (Dependency, Membership, Person, Service, Squad, System, Tag, Tribe)
        )
        c.execute(
            f"TRUNCATE {tables}, {Service.tags.through._meta.db_table} RESTART IDENTITY CASCADE"
        )
    cur = connection.connection.cursor()  # the psycopg 3 cursor: COPY
    tribe_cols = {"id": 0, "slug": 0, "name": 0, "description": 0, "kind": 0}
    tribe_extra = _defaults(Tribe, tribe_cols)
    _copy(
        cur,
        Tribe,
        [*tribe_cols, *tribe_extra],
        (
            [i, f"tribe-{i}", f"Tribe {i}", f"Tribe {i} of the bench org", "tribe"]
            + list(tribe_extra.values())
            for i in range(1, n_tribes + 1)
        ),
    )
    squad_cols = {"id": 0, "slug": 0, "name": 0, "mission": 0, "tribe_id": 0, "oncall_contact": 0}
    squad_extra = _defaults(Squad, squad_cols)
    _copy(
        cur,
        Squad,
        [*squad_cols, *squad_extra],
        (
            [
                i,
                f"squad-{i}",
                f"Squad {i:05d}",
                f"Own the {rnd.choice(WORDS)} experience",
                1 + i % n_tribes,
                f"oncall-{i}",
            ]
            + list(squad_extra.values())
            for i in range(1, n_squads + 1)
        ),
    )
    person_cols = {"id": 0, "slug": 0, "name": 0, "email": 0}
    person_extra = _defaults(Person, person_cols)
    _copy(
        cur,
        Person,
        [*person_cols, *person_extra],
        (
            [i, f"person-{i}", f"Person {i}", f"person-{i}@example.org"]
            + list(person_extra.values())
            for i in range(1, n_people + 1)
        ),
    )
    member_cols = {"id": 0, "person_id": 0, "squad_id": 0, "role": 0}
    member_extra = _defaults(Membership, member_cols)
    _copy(
        cur,
        Membership,
        [*member_cols, *member_extra],
        (
            [i, i, 1 + (i - 1) // 6, "lead" if i % 6 == 1 else "member"]
            + list(member_extra.values())
            for i in range(1, n_people + 1)
        ),
    )
    system_cols = {"id": 0, "slug": 0, "name": 0, "description": 0, "owner_id": 0}
    system_extra = _defaults(System, system_cols)
    _copy(
        cur,
        System,
        [*system_cols, *system_extra],
        (
            [i, f"system-{i}", f"System {i}", "", 1 + i % n_squads] + list(system_extra.values())
            for i in range(1, n_systems + 1)
        ),
    )
    _copy(cur, Tag, ["id", "name"], ([i, w] for i, w in enumerate(TAGS, start=1)))
    svc_cols = {
        "id": 0,
        "slug": 0,
        "name": 0,
        "description": 0,
        "owner_id": 0,
        "system_id": 0,
        "type": 0,
        "lifecycle": 0,
        "tier": 0,
        "repository_url": 0,
        "default_branch": 0,
        "runbook_url": 0,
        "oncall": 0,
        "created_at": 0,
        "updated_at": 0,
    }
    svc_extra = _defaults(Service, svc_cols)

    def services():
        for i in range(1, scale + 1):
            words = rnd.sample(VOCAB, 7)
            yield [
                i,
                f"svc-{i:06d}",
                f"{words[0].title()} {i}",
                f"Handles {' '.join(words[1:])} for the {words[0]} squad's listeners.",
                1 + i % n_squads,
                1 + i % n_systems,
                TYPES[i % len(TYPES)],
                LIFECYCLES[i % len(LIFECYCLES)],
                1 + i % 3,
                f"https://git.example.org/bench/svc-{i}.git" if i % 4 else "",
                "main",
                f"https://runbooks.example.org/svc-{i}" if i % 3 else "",
                f"oncall-{i % 97}" if i % 5 else "",
                now,
                now,
            ] + list(svc_extra.values())

    _copy(cur, Service, [*svc_cols, *svc_extra], services())
    _copy(
        cur,
        Service.tags.through,
        ["service_id", "tag_id"],
        ([i, t] for i in range(1, scale + 1) for t in rnd.sample(range(1, len(TAGS) + 1), 2)),
    )
    seen = set()
    while len(seen) < n_deps:
        a, b = rnd.randint(1, scale), rnd.randint(1, scale)
        if a != b:
            seen.add((a, b))
    _copy(
        cur,
        Dependency,
        ["id", "source_id", "target_service_id"],
        ([i, a, b] for i, (a, b) in enumerate(sorted(seen), start=1)),
    )
    with connection.cursor() as c:
        for model in (Tribe, Squad, Person, Membership, System, Tag, Service, Dependency):
            t = model._meta.db_table
            c.execute(
                f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), (SELECT MAX(id) FROM {t}))"
            )
    from squads import stitch
    from squads.cache import CATALOG

    seeded = time.perf_counter()
    stitch.restitch_all()  # COPY sends no model signals: stitch every service's read form
    stitched = time.perf_counter()
    with connection.cursor() as c:
        c.execute("ANALYZE")  # as autovacuum would (this PostgreSQL may run without it)
    CATALOG.bump()
    return seeded - start, stitched - seeded


# --- query counts -------------------------------------------------------------------------------
def pages(client_slug="svc-000042"):
    return {
        "catalog page": "/catalog/",
        "catalog search": f"/catalog/?q={SEARCH_TERMS[0]}",
        "service page": f"/services/{client_slug}/",
        "API service list": "/api/v1/services/",
    }


def count_queries(user, cache_seconds=0):
    """SQL queries per page; by default with the catalog cache off (the work of a miss), with
    ``cache_seconds`` the queries of a cache hit."""
    from django.db import connection
    from django.test import Client, override_settings
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(user)
    counts = {}
    with override_settings(CATALOG_CACHE_SECONDS=cache_seconds):
        for name, url in pages().items():
            client.get(url)  # warm caches (content types, templates, the catalog cache)
            with CaptureQueriesContext(connection) as ctx:
                resp = client.get(url)
            assert resp.status_code == 200, (url, resp.status_code)
            counts[name] = len(ctx.captured_queries)
    return counts


# --- gunicorn + wrk -----------------------------------------------------------------------------
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(db_name, port, logfile, **extra_env):
    from django.conf import settings

    db = settings.DATABASES["default"]
    env = {
        k: v for k, v in os.environ.items() if k not in ("BACKLINE_TESTING", "TEST_DATABASE_NAME")
    }
    env.update(
        DATABASE_URL=f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db_name}",
        DJANGO_SETTINGS_MODULE="tests.bench.gunicorn_settings",
        DEBUG="false",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        REDIS_URL=settings.REDIS_URL,
        BACKLINE_VAR_DIR=str(settings.VAR_DIR),
        PYTHONPATH=str(ROOT),
        **extra_env,
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "portal.wsgi:application",
            "--workers",
            str(WORKERS),
            "--threads",
            str(THREADS),
            "--worker-connections",
            str(WORKER_CONNECTIONS),
            "--worker-class",
            "gthread",
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=logfile,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("gunicorn exited early")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=2)
            return proc
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("gunicorn did not answer in 60 s")


def fetch(url, headers):
    req = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(req, timeout=30) as resp:
        if resp.status != 200 or resp.url != url:
            raise RuntimeError(f"{url}: {resp.status} {resp.url}")
        return resp.read()


LUA = """
local paths = {%(paths)s}
local headers = {%(headers)s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1], headers)
end
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format(
    "RESULT {\\"requests\\": %%d, \\"seconds\\": %%f, \\"p50_us\\": %%d, \\"p95_us\\": %%d, \\"errors\\": %%d}\\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(95), errors))
end
"""


def wrk(base, paths, headers, tmp, seconds=WRK_SECONDS, connections=SATURATION):
    script = Path(tmp) / f"wrk-{time.monotonic_ns()}.lua"
    script.write_text(
        LUA
        % {
            "paths": ", ".join(json.dumps(p) for p in paths),
            "headers": ", ".join(
                f"[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()
            ),
        }
    )
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            base + paths[0],
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result: {out.stdout[-500:]} {out.stderr[-500:]}")
    res = json.loads(line.removeprefix("RESULT "))
    if res["errors"]:
        raise RuntimeError(f"wrk: {res['errors']} errors on {paths[0]}")
    res["rps"] = res["requests"] / res["seconds"]
    res["p95_ms"] = res["p95_us"] / 1000
    return res


@contextlib.contextmanager
def _writing(scale):
    """Edit a random service's description every WRITE_EVERY seconds (in a thread, through the
    ORM as the portal does) while the block runs."""
    from django.db import connection

    from squads.models import Service

    stop, writes = threading.Event(), {"n": 0}

    def loop():
        rnd = random.Random(11)
        try:
            while not stop.wait(WRITE_EVERY):
                Service.objects.filter(slug=f"svc-{rnd.randint(1, scale):06d}").update(
                    description=f"Edited {time.time():.3f}"
                )
                writes["n"] += 1
        finally:
            connection.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield writes
    finally:
        stop.set()
        thread.join(10)


def _add_pair(
    report, name, lat_name, results, bares, min_ratio=None, limit_ms=None, notes=("", "")
):
    """Two figures: throughput at saturation and p95 with LATENCY_CLIENTS, each vs the bare view."""
    (res, res_lat), (bare, bare_lat) = results, bares
    report.add(
        name,
        res["rps"],
        "req/s",
        baseline=bare["rps"],
        baseline_label=BARE,
        target=f"≥ {min_ratio}× bare" if min_ratio else "",
        ok=(res["rps"] >= min_ratio * bare["rps"]) if min_ratio else None,
        note=notes[0],
    )
    report.add(
        lat_name,
        res_lat["p95_ms"],
        "ms",
        baseline=bare_lat["p95_ms"],
        baseline_label=BARE,
        target=f"< {limit_ms} ms" if limit_ms else "",
        ok=(res_lat["p95_ms"] < limit_ms) if limit_ms else None,
        note=notes[1],
    )


# --- the benchmark ------------------------------------------------------------------------------
def _use_db():
    from django.conf import settings
    from django.db import connection

    test_settings = settings.DATABASES["default"].setdefault("TEST", {})
    old = (connection.settings_dict["NAME"], test_settings.get("NAME"))
    test_settings["NAME"] = DB_NAME
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False, serialize=False)
    return old


def _drop_db(old):
    from django.conf import settings
    from django.db import connection

    keep = os.environ.get("BENCH_KEEP_DB") == "1"
    connection.creation.destroy_test_db(old[0], verbosity=0, keepdb=keep)
    test_settings = settings.DATABASES["default"].setdefault("TEST", {})
    if old[1] is None:
        test_settings.pop("NAME", None)
    else:
        test_settings["NAME"] = old[1]


@contextlib.contextmanager
def _runs_finishing(scale):
    """A pipeline run finishing every RUN_EVERY seconds on a random service (created queued,
    then claimed and finished with conditional UPDATEs, as the worker does), in a thread."""
    from django.db import connection

    from pipelines.models import PipelineRun, RunStatus
    from squads.models import Service

    stop, runs = threading.Event(), {"n": 0}

    def loop():
        rnd = random.Random(13)
        try:
            while not stop.wait(RUN_EVERY):
                svc = Service.objects.only("pk").get(slug=f"svc-{rnd.randint(1, scale):06d}")
                run = PipelineRun.objects.create(service=svc, ref="main", number=runs["n"] + 1)
                PipelineRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
                    status=RunStatus.RUNNING
                )
                PipelineRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
                    status=rnd.choice((RunStatus.SUCCEEDED, RunStatus.FAILED))
                )
                runs["n"] += 1
        finally:
            connection.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield runs
    finally:
        stop.set()
        thread.join(10)


def _api_cases(rnd):
    """The catalog API operations of the Backstage comparison (issue 16), read from the
    stitched form: (name, paths, p50 limit as a multiple of /api/v1/me/'s p50)."""
    squads = max(SCALE // 10, 10)
    return [
        (
            "API entity by name",
            [f"/api/v1/services/svc-{rnd.randint(1, SCALE):06d}/" for _ in range(50)],
            2,
        ),
        (
            "API list page of 20",
            [f"/api/v1/services/?page_size=20&page={p}" for p in range(1, 21)],
            3,
        ),
        (
            "API owner filter",
            [f"/api/v1/services/?owner=squad-{rnd.randint(1, squads)}" for _ in range(20)],
            3,
        ),
        (
            "API full-text search",
            [f"/api/v1/services/?search={t.replace(' ', '+')}&page_size=20" for t in SEARCH_TERMS],
            3,
        ),
        (
            "API facets (lifecycle, type, owner)",
            ["/api/v1/services/facets/?facet=lifecycle&facet=type&facet=owner&page_size=20"],
            3,
        ),
    ]


def _api_figures(report, base, bearer, tmp, label, churn=False):
    """Each API operation's p50 / p95 (LATENCY_CLIENTS clients) and req/s (saturation) next
    to ``/api/v1/me/`` in the same run; with ``churn``, while runs finish every RUN_EVERY s."""
    me = ["/api/v1/me/"]
    fetch(base + me[0], bearer)
    me_lat = wrk(base, me, bearer, tmp, connections=LATENCY_CLIENTS)
    me_sat = wrk(base, me, bearer, tmp)
    base_label = f"/api/v1/me/ p50, same run{label}"
    for name, paths, times in _api_cases(random.Random(5)):
        for p in paths[:3]:
            fetch(base + p, bearer)
        ctx = _runs_finishing(SCALE) if churn else contextlib.nullcontext({"n": 0})
        with ctx as runs:
            lat = wrk(base, paths, bearer, tmp, connections=LATENCY_CLIENTS)
            sat = wrk(base, paths, bearer, tmp)
        p50, me_p50 = lat["p50_us"] / 1000, me_lat["p50_us"] / 1000
        extra = f"; {runs['n']} runs finished while measuring" if churn else ""
        report.add(
            f"{name} p50 at {SCALE:,} services{label}",
            p50,
            "ms",
            baseline=me_p50,
            baseline_label=base_label,
            target=f"≤ {times}× /api/v1/me/",
            ok=p50 <= times * me_p50,
            note=f"p95 {lat['p95_ms']:.1f} ms ({LATENCY_CLIENTS} clients){extra}",
        )
        report.add(
            f"{name} throughput at {SCALE:,} services{label}",
            sat["rps"],
            "req/s",
            baseline=me_sat["rps"],
            baseline_label=f"/api/v1/me/, same run{label}",
            note=f"{SATURATION} connections{extra}",
        )


def run(report):
    global DB_NAME
    from tests.bench.harness import bench_db

    DB_NAME = bench_db("catalog")
    if not shutil.which("wrk"):
        raise RuntimeError("wrk not found: `make deps` installs it (apt-get install wrk)")
    from django.contrib.auth import get_user_model
    from django.test import Client

    from portal.models import ApiToken
    from squads.models import Squad

    limit_ms = 100 if SCALE <= 10_000 else 150
    old = _use_db()
    tmp = tempfile.mkdtemp(prefix="bench-catalog-")
    gunicorn = cold = None
    try:
        user = get_user_model().objects.create_user("bench", password="bench-pw-1")
        small = max(SCALE // 10, 100)
        seed(small)
        counts_small = count_queries(user)
        seed_s, stitch_s = seed(SCALE)
        counts_big = count_queries(user)
        report.add(
            f"catalog seed of {SCALE:,} services, {SCALE // 10:,} squads, {SCALE * 2:,} deps (COPY)",
            seed_s,
            "s",
            note="bulk COPY; then every service stitched, then ANALYZE",
        )
        report.add(
            f"stitching the read form of all {SCALE:,} services (restitch_all)",
            stitch_s,
            "s",
            note="list row, detail document, scorecard, search vector",
        )
        hits = count_queries(user, cache_seconds=300)
        for name in counts_big:
            report.add(
                f"SQL queries per request: {name} at {SCALE:,} services (catalog cache miss)",
                counts_big[name],
                "queries",
                baseline=counts_small[name],
                baseline_label=f"same request at {small:,} services",
                target="equal (constant in catalog size)",
                ok=counts_big[name] == counts_small[name],
            )
        for name in CACHED:
            report.add(
                f"SQL queries per request: {name}, catalog cache hit",
                hits[name],
                "queries",
                baseline=counts_big[name],
                baseline_label="same request, cache miss",
                note="session, user, the header's person",
            )

        client = Client()
        client.force_login(user)
        cookie = {"Cookie": f"sessionid={client.cookies['sessionid'].value}"}
        squad = Squad.objects.get(slug="squad-1")
        token, raw = ApiToken.generate(squad=squad, name="bench", scopes=["catalog:write"])
        # a load-generating bot: its operator raises the per-token limit (default 600/min),
        # otherwise wrk measures 429s
        token.rate_limit_per_minute = 1_000_000
        token.save(update_fields=["rate_limit_per_minute"])
        bearer = {"Authorization": f"Bearer {raw}"}

        log = open(Path(tmp) / "gunicorn.log", "ab")
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        gunicorn = start_gunicorn(DB_NAME, port, log)
        # the same pages with the catalog cache off: every request does a cache miss's work
        cold_port = _free_port()
        cold_base = f"http://127.0.0.1:{cold_port}"
        cold = start_gunicorn(DB_NAME, cold_port, log, CATALOG_CACHE_SECONDS="0")

        rnd = random.Random(7)
        cases = [
            ("catalog page", [f"/catalog/?page={p}" for p in range(1, 21)], cookie, 0.35),
            (
                "catalog search",
                [f"/catalog/?q={t.replace(' ', '+')}" for t in SEARCH_TERMS],
                cookie,
                None,
            ),
            (
                "service page",
                [f"/services/svc-{rnd.randint(1, SCALE):06d}/" for _ in range(50)],
                cookie,
                None,
            ),
            (
                "API service list",
                [f"/api/v1/services/?page={p}" for p in range(1, 21)],
                bearer,
                0.35,
            ),  # the stitched rows, never cached
        ]
        bare_of = {}
        for name, paths, headers, min_ratio in cases:
            sizes = [len(fetch(base + p, headers)) for p in paths[:5]]
            size = sum(sizes) // len(sizes)
            for p in paths:  # every URL seen once: the steady state of a browsed catalog
                fetch(base + p, headers)
            bare_path = f"/bench/bare/?bytes={size}"
            bare_size = len(fetch(base + bare_path, cookie))
            bare = wrk(base, [bare_path], cookie, tmp)
            res = wrk(base, paths, headers, tmp)
            # latency with as many clients as gunicorn has processes: at saturation (above) a
            # closed-loop p95 is only queueing (connections / throughput), for the bare view too
            bare_lat = wrk(base, [bare_path], cookie, tmp, connections=LATENCY_CLIENTS)
            res_lat = wrk(base, paths, headers, tmp, connections=LATENCY_CLIENTS)
            bare_of[name] = (bare_path, bare, bare_lat)
            served = "cache hits once each URL was seen" if name in CACHED else "not cached"
            note = (
                f"{len(paths)} URLs, ~{size // 1024} KiB; bare view {bare_size // 1024} KiB; "
                f"{WORKERS} gunicorn workers x {THREADS} threads, wrk {SATURATION} "
                f"connections; {served}"
            )
            lat_note = (
                f"{LATENCY_CLIENTS} concurrent clients; at saturation ({SATURATION} "
                f"connections) p95 {res['p95_ms']:.0f} ms vs bare {bare['p95_ms']:.0f} ms"
            )
            _add_pair(
                report,
                f"{name} throughput at {SCALE:,} services",
                f"{name} p95 latency at {SCALE:,} services ({LATENCY_CLIENTS} clients)",
                (res, res_lat),
                (bare, bare_lat),
                min_ratio=min_ratio,
                limit_ms=limit_ms,
                notes=(note, lat_note),
            )
            if name not in CACHED:
                continue
            for p in paths[:3]:  # warm the process (templates, connections)
                fetch(cold_base + p, headers)
            miss = wrk(cold_base, paths, headers, tmp)
            miss_lat = wrk(cold_base, paths, headers, tmp, connections=LATENCY_CLIENTS)
            _add_pair(
                report,
                f"{name} throughput at {SCALE:,} services, every request a cache miss",
                f"{name} p95 latency at {SCALE:,} services, every request a cache miss "
                f"({LATENCY_CLIENTS} clients)",
                (miss, miss_lat),
                (bare, bare_lat),
                notes=("CATALOG_CACHE_SECONDS=0: the rows rendered for every request", ""),
            )

        # the API read path is the stitched form whatever the cache: measured on the gunicorn
        # with the cache off, then while pipeline runs finish every RUN_EVERY seconds
        _api_figures(report, cold_base, bearer, tmp, " (catalog cache off)")
        _api_figures(
            report, cold_base, bearer, tmp, " (cache off, a run finishing every 100 ms)", churn=True
        )
        # the HTML pages uncached while pipeline runs finish every RUN_EVERY seconds (issue 16:
        # at least half the bare view's throughput)
        churn_cases = {
            "catalog page": [f"/catalog/?page={p}" for p in range(1, 21)],
            "service page": [f"/services/svc-{rnd.randint(1, SCALE):06d}/" for _ in range(50)],
        }
        for name, churn_paths in churn_cases.items():
            bare = bare_of[name][1]
            with _runs_finishing(SCALE) as runs:
                churn = wrk(cold_base, churn_paths, cookie, tmp)
            report.add(
                f"{name} throughput at {SCALE:,} services, cache off, a run finishing every 100 ms",
                churn["rps"],
                "req/s",
                baseline=bare["rps"],
                baseline_label=BARE,
                target="≥ 0.5× bare",
                ok=churn["rps"] >= 0.5 * bare["rps"],
                note=f"{runs['n']} runs finished while measuring",
            )

        # browsing while the catalog changes: a service is edited every WRITE_EVERY seconds
        # (each edit invalidates every cached page)
        bare_path, bare, bare_lat = bare_of["catalog page"]
        paths = [f"/catalog/?page={p}" for p in range(1, 21)]
        with _writing(SCALE) as writes:
            mixed = wrk(base, paths, cookie, tmp)
            mixed_lat = wrk(base, paths, cookie, tmp, connections=LATENCY_CLIENTS)
        _add_pair(
            report,
            f"catalog page throughput at {SCALE:,} services, a service edited every "
            f"{WRITE_EVERY:g} s",
            f"catalog page p95 latency at {SCALE:,} services, a service edited every "
            f"{WRITE_EVERY:g} s ({LATENCY_CLIENTS} clients)",
            (mixed, mixed_lat),
            (bare, bare_lat),
            limit_ms=limit_ms,
            notes=(f"{writes['n']} edits during the two wrk runs; each invalidates the cache", ""),
        )
    finally:
        for proc in (gunicorn, cold):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, 15)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, 9)
                    proc.wait(5)
        from django.db import connections

        connections.close_all()
        _drop_db(old)
        shutil.rmtree(tmp, ignore_errors=True)
