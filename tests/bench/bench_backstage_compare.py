"""Against real Backstage (issue 16 item 5): the same generated organisation (50 business units,
1,000 teams, 500 users, 10,000 components with 2 ``dependsOn``: 11,550 entities) loaded into
Backline by its importer and into the Backstage catalog backend (``backstage_server``: npm,
pinned versions, its own database on the same PostgreSQL) by its ingestion; both databases
ANALYZEd; then each read measured alternately (Backstage, Backline, Backstage, Backline):
p50 / p95 of ``SEQUENTIAL`` sequential requests and ``wrk`` req/s, with the load average.

Backline is served as the catalog bench serves it (gunicorn, ``gunicorn_settings``, catalog
cache off); Backstage is its single node process, measured at rest (re-processing is pushed
past the measurements, ``backstage_server.PROCESSING_INTERVAL``).

Skipped with a message when npm is absent or ``BENCH_BACKSTAGE=0``. Environment:
``BENCH_WRK_SECONDS`` (default 8), ``BENCH_KEEP_DB=1`` keeps both databases.
"""

import contextlib
import http.client
import json
import os
import random
import shutil
import statistics
import tempfile
import time
import urllib.parse
import urllib.request

from tests.bench import backstage_server as bs
from tests.bench.harness import bench_db, p95, stop_process

SEQUENTIAL = 200
ROUNDS = 2
COMPONENTS, TEAMS, UNITS, USERS = 10_000, 1_000, 50, 500
EXPECTED = COMPONENTS + TEAMS + UNITS + USERS
INGEST_TIMEOUT = int(os.environ.get("BENCH_BACKSTAGE_INGEST_TIMEOUT", "1200"))
# (operation, speed ratio Backline ÷ Backstage it must reach at p50, and at req/s if any)
TARGETS = {
    "entity by name": (1, 1),
    "owner filter": (2, None),
    "full-text search": (10, None),
    "first page of 20": (10, None),
    "facets (spec.type)": (10, None),
}
IMPORT_TARGET = 20


def cases(rnd):
    """(operation, Backstage paths, Backline paths): the same questions of both."""
    names = [rnd.randrange(COMPONENTS) for _ in range(50)]
    teams = [rnd.randrange(TEAMS) for _ in range(20)]
    terms = [str(rnd.randrange(1000, COMPONENTS)) for _ in range(20)]  # "Component 4217"
    comp = "filter=kind=component"
    return [
        (
            "entity by name",
            [f"/api/catalog/entities/by-name/component/default/component-{n}" for n in names],
            [f"/api/v1/services/component-{n}/" for n in names],
        ),
        (
            "owner filter",
            [f"/api/catalog/entities/by-query?filter=spec.owner=team-{t}" for t in teams],
            [f"/api/v1/services/?owner=team-{t}" for t in teams],
        ),
        (
            "full-text search",
            [
                f"/api/catalog/entities/by-query?fullTextFilterTerm={t}"
                f"&fullTextFilterFields=metadata.name,metadata.description&{comp}&limit=20"
                for t in terms
            ],
            [f"/api/v1/services/?search={t}&page_size=20" for t in terms],
        ),
        (
            "first page of 20",
            [f"/api/catalog/entities/by-query?limit=20&{comp}"],
            ["/api/v1/services/?page_size=20"],
        ),
        (
            "facets (spec.type)",
            [f"/api/catalog/entity-facets?facet=spec.type&{comp}"],
            ["/api/v1/services/facets/?facet=type"],
        ),
    ]


# --- measuring ----------------------------------------------------------------------------------
def get_json(base, path, headers=None):
    req = urllib.request.Request(base + path, headers=headers or {})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def sequential(base, paths, headers, n=SEQUENTIAL):
    """Milliseconds of each of ``n`` sequential GETs on one keep-alive connection."""
    url = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    out = []
    try:
        for i in range(n):
            path = paths[i % len(paths)]
            t0 = time.perf_counter()
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            resp.read()
            out.append((time.perf_counter() - t0) * 1000)
            if resp.status != 200:
                raise RuntimeError(f"{base}{path}: HTTP {resp.status}")
    finally:
        conn.close()
    return out


def check_same_answer(name, bs_base, bl_base, bs_path, bl_path, bearer):
    """Both sides find something for the question (a wrong URL must not look fast)."""
    a, b = get_json(bs_base, bs_path), get_json(bl_base, bl_path, bearer)
    if name == "entity by name":
        ok = a["metadata"]["name"] == b["slug"]
    elif name.startswith("facets"):
        ok = bool(a["facets"]["spec.type"]) and bool(b["facets"]["type"])
    else:
        ok = bool(a["items"]) and bool(b["results"])
    if not ok:
        raise RuntimeError(f"{name}: the two answers differ ({bs_path} vs {bl_path})")


def measure(bs_base, bl_base, bearer, tmp):
    """Per operation and side: samples, wrk runs and load averages over ROUNDS rounds."""
    from tests.bench.bench_catalog import wrk

    rows = []
    for name, bs_paths, bl_paths in cases(random.Random(16)):
        check_same_answer(name, bs_base, bl_base, bs_paths[0], bl_paths[0], bearer)
        side = {s: {"ms": [], "rps": [], "load": []} for s in ("backstage", "backline")}
        for _ in range(ROUNDS):
            for key, base, paths, headers in (
                ("backstage", bs_base, bs_paths, {}),
                ("backline", bl_base, bl_paths, bearer),
            ):
                sequential(base, paths[:5], headers, n=5)  # warm the process
                side[key]["load"].append(os.getloadavg()[0])
                side[key]["ms"] += sequential(base, paths, headers)
                side[key]["rps"].append(wrk(base, paths, headers, tmp, connections=8)["rps"])
        rows.append((name, side))
        print(f"  measured {name}", flush=True)
    return rows


# --- loading ------------------------------------------------------------------------------------
def _scalar(dbname, sql):
    import psycopg
    from django.conf import settings

    db = settings.DATABASES["default"]
    with psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"] or "postgres",
        password=db["PASSWORD"] or None,
        dbname=dbname,
        autocommit=True,
    ) as conn:
        cur = conn.execute(sql)
        row = cur.fetchone() if cur.description else None
        return row[0] if row else None


PENDING_SQL = """
SELECT (SELECT count(*) FROM refresh_state WHERE result_hash IS NULL)
     + (SELECT count(*) FROM stitch_queue)
     + (SELECT count(*) FROM refresh_state r LEFT JOIN final_entities f USING (entity_id)
        WHERE f.final_entity IS NULL)
"""
COUNT_PATH = (
    "/api/catalog/entities/by-query?limit=0&filter=kind=component&filter=kind=group"
    "&filter=kind=user"
)


def wait_ingested(proc, base, dbname):
    """Seconds from the first entity Backstage's processing picked up until all EXPECTED
    entities are readable and nothing waits for processing or stitching."""
    deadline = time.time() + INGEST_TIMEOUT
    started = None
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Backstage exited during ingestion (code {proc.returncode})")
        with contextlib.suppress(Exception):  # the tables appear with the migrations
            if started is None and _scalar(dbname, "SELECT count(*) FROM refresh_state"):
                started = time.perf_counter()
            if started is not None:
                total = get_json(base, COUNT_PATH)["totalItems"]
                if total == EXPECTED and _scalar(dbname, PENDING_SQL) == 0:
                    return time.perf_counter() - started
        time.sleep(1)
    raise RuntimeError(f"Backstage did not ingest {EXPECTED:,} entities in {INGEST_TIMEOUT} s")


def drop_database(name):
    _scalar("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def backline_import(text):
    """Backline's import of the catalog into the (throwaway) database: seconds."""
    from django.db import connection

    from portal.actors import Actor
    from squads.backstage import import_catalog

    t0 = time.perf_counter()
    rep = import_catalog([("org.yaml", text)], Actor.system("bench", door="command"))
    seconds = time.perf_counter() - t0
    if rep.created != EXPECTED:
        raise RuntimeError(f"Backline import: {rep.summary}")
    with connection.cursor() as c:
        c.execute("ANALYZE")
    return seconds


def backline_token():
    from portal.models import ApiToken
    from squads.models import Squad

    token, raw = ApiToken.generate(
        squad=Squad.objects.get(slug="team-1"), name="bench", scopes=["catalog:write"]
    )
    token.rate_limit_per_minute = 1_000_000  # a load generator: otherwise wrk measures 429s
    token.save(update_fields=["rate_limit_per_minute"])
    return {"Authorization": f"Bearer {raw}"}


# --- report -------------------------------------------------------------------------------------
def _ms(x):
    return f"{x:.1f} ms" if x >= 10 else f"{x:.2f} ms"


def summarise(side):
    ms = side["ms"]
    return {
        "p50": statistics.median(ms),
        "p95": p95(ms),
        "rps": statistics.mean(side["rps"]),
        "load": (min(side["load"]), max(side["load"])),
    }


def table(rows, import_row, versions):
    """The "Against real Backstage" section (markdown) and the list of missed targets."""
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
        + f"; the same {EXPECTED:,}-entity catalog in both, both databases ANALYZEd, Backline's "
        f"catalog cache off; p50 / p95 of {SEQUENTIAL} sequential requests and `wrk` req/s "
        f"(8 connections), {ROUNDS} alternating rounds (Backstage, Backline, ...).",
        "",
        "| operation | Backstage p50 / p95, req/s | Backline p50 / p95, req/s "
        "| Backline ÷ Backstage (speed: p50, req/s) | target | result | load (1 min) |",
        "|---|---|---|---|---|---|---|",
    ]
    missed = []
    for name, side in rows:
        a, b = summarise(side["backstage"]), summarise(side["backline"])
        speed, rps_speed = a["p50"] / b["p50"], b["rps"] / a["rps"]
        need_p50, need_rps = TARGETS[name]
        ok = speed >= need_p50 and (need_rps is None or rps_speed >= need_rps)
        target = f"≥ {need_p50}× p50" + (f" and ≥ {need_rps}× req/s" if need_rps else "")
        if not ok:
            missed.append(f"{name}: {speed:.2f}× p50, {rps_speed:.2f}× req/s (needs {target})")
        load = (min(a["load"][0], b["load"][0]), max(a["load"][1], b["load"][1]))
        lines.append(
            f"| {name} | {_ms(a['p50'])} / {_ms(a['p95'])}, {a['rps']:,.0f} req/s "
            f"| {_ms(b['p50'])} / {_ms(b['p95'])}, {b['rps']:,.0f} req/s "
            f"| {speed:.2f}×, {rps_speed:.2f}× | {target} | {'pass' if ok else '**MISSED**'} "
            f"| {load[0]:.1f}–{load[1]:.1f} |"
        )
    bs_s, bl_s, load = import_row
    speed = bs_s / bl_s
    ok = speed >= IMPORT_TARGET
    if not ok:
        missed.append(f"import: {speed:.1f}× (needs ≥ {IMPORT_TARGET}×)")
    lines.append(
        f"| ingest / import {EXPECTED:,} entities | {bs_s:.1f} s (processing + stitching) "
        f"| {bl_s:.2f} s (importer, one transaction) | {speed:.1f}× | ≥ {IMPORT_TARGET}× "
        f"| {'pass' if ok else '**MISSED**'} | {load[0]:.1f}–{load[1]:.1f} |"
    )
    lines += [
        "",
        "Backstage is one node process (backend-defaults with only the catalog plugin, "
        "`dangerouslyDisableDefaultAuthPolicy` for the bench, `LOG_LEVEL=warn`: no access log), "
        "measured at rest (its "
        f"re-processing interval set to {bs.PROCESSING_INTERVAL['minutes']} min, past the reads); "
        "Backline is gunicorn, 2 workers × 4 threads. Search: a 4-digit number found in one "
        "component's name and description (`fullTextFilterFields=metadata.name,"
        "metadata.description`, Backline `?search=`); list, search and facets are over "
        "components (`filter=kind=component`), as Backline's service list is.",
    ]
    return "\n".join(lines) + "\n", missed


def add_figures(report, rows, import_row):
    """The same comparison as harness figures (so `make bench` exits non-zero on a miss)."""
    bs_s, bl_s, load = import_row
    specs = [
        (
            f"import of {EXPECTED:,} entities",
            (bl_s, "s", bs_s, "real Backstage processing + stitching, same run"),
            (bs_s / bl_s, IMPORT_TARGET, load[1]),
        )
    ]
    for name, side in rows:
        a, b = summarise(side["backstage"]), summarise(side["backline"])
        need_p50, need_rps = TARGETS[name]
        worst = max(a["load"][1], b["load"][1])
        label = f"real Backstage, same run; p95 {a['p95']:.1f} vs {b['p95']:.1f} ms"
        specs.append(
            (
                f"{name} p50",
                (b["p50"], "ms", a["p50"], label),
                (a["p50"] / b["p50"], need_p50, worst),
            )
        )
        label = "real Backstage, same run (wrk, 8 connections)"
        specs.append(
            (
                f"{name} req/s",
                (b["rps"], "req/s", a["rps"], label),
                (b["rps"] / a["rps"], need_rps, worst),
            )
        )
    for what, (value, unit, base, label), (speed, need, worst) in specs:
        report.add(
            f"vs Backstage: {what} (Backline)",
            value,
            unit,
            baseline=base,
            baseline_label=f"{label}; Backline's speed {speed:.2f}× Backstage's",
            target=f"≥ {need}× Backstage's speed" if need else "",
            ok=speed >= need if need else None,
            load=worst,
        )


# --- the benchmark ------------------------------------------------------------------------------
def _backstage_up(stack, tmp, catalog_path):
    """Install, configure and start Backstage; wait for its ingestion. Returns (base, seconds,
    load range)."""
    from django.conf import settings

    from tests.bench.bench_catalog import _free_port

    bs.install()
    dbname = bench_db("backstage_real")
    drop_database(dbname)
    if os.environ.get("BENCH_KEEP_DB") != "1":
        stack.callback(drop_database, dbname)
    port = _free_port()
    cfg = bs.write_config(bs.DIR, port, dbname, catalog_path, settings.DATABASES["default"])
    log = stack.enter_context(open(bs.DIR / "backend.log", "ab"))
    proc = bs.start(bs.DIR, cfg, log)
    stack.callback(stop_process, proc)
    base = f"http://127.0.0.1:{port}"
    bs.wait_ready(proc, base)
    load0 = os.getloadavg()[0]
    seconds = wait_ingested(proc, base, dbname)
    _scalar(dbname, "ANALYZE")
    return base, seconds, (load0, os.getloadavg()[0])


def _backline_up(stack, tmp, text):
    from django.db import connection

    from tests.bench.bench_backstage import _ThrowawayDb
    from tests.bench.bench_catalog import _free_port, start_gunicorn

    stack.enter_context(_ThrowawayDb("backstage_compare"))
    load0 = os.getloadavg()[0]
    seconds = backline_import(text)
    load = (load0, os.getloadavg()[0])
    bearer = backline_token()
    port = _free_port()
    log = stack.enter_context(open(os.path.join(tmp, "gunicorn.log"), "ab"))
    proc = start_gunicorn(connection.settings_dict["NAME"], port, log, CATALOG_CACHE_SECONDS="0")
    stack.callback(stop_process, proc)
    return f"http://127.0.0.1:{port}", bearer, seconds, load


def run(report):
    if os.environ.get("BENCH_BACKSTAGE") == "0":
        print("  skipped: BENCH_BACKSTAGE=0", flush=True)
        return
    if not bs.npm_available():
        print("  skipped: npm/node not found (`make deps` installs Node.js and npm)", flush=True)
        return
    if not shutil.which("wrk"):
        raise RuntimeError("wrk not found: `make deps` installs it (apt-get install wrk)")
    from squads.backstage.generate import generate_org_catalog

    text = generate_org_catalog(units=UNITS, teams=TEAMS, users=USERS, components=COMPONENTS)
    tmp = tempfile.mkdtemp(prefix="bench-backstage-")
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, tmp, True)
        catalog_path = bs.DIR / "catalog.yaml"
        bs.DIR.mkdir(parents=True, exist_ok=True)
        catalog_path.write_text(text)
        # Backline imports first: once Backstage has ingested, its processing loop keeps
        # re-processing every entity in the background, and each import is timed alone.
        bl_base, bearer, bl_s, bl_load = _backline_up(stack, tmp, text)
        print(f"  Backline imported {EXPECTED:,} entities in {bl_s:.2f} s", flush=True)
        bs_base, bs_s, bs_load = _backstage_up(stack, tmp, catalog_path)
        print(f"  Backstage ingested {EXPECTED:,} entities in {bs_s:.1f} s", flush=True)
        rows = measure(bs_base, bl_base, bearer, tmp)
    versions = {**bs.installed_versions(), "Node.js": _node_version()}
    load = (min(bs_load[0], bl_load[0]), max(bs_load[1], bl_load[1]))
    md, missed = table(rows, (bs_s, bl_s, load), versions)
    print(md, flush=True)
    for m in missed:
        print(f"  MISSED against Backstage: {m}", flush=True)
    add_figures(report, rows, (bs_s, bl_s, load))
    report.sections.append(("backstage_compare", md))


def _node_version():
    import subprocess

    return subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
