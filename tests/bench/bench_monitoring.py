"""Monitoring bench: the service dashboard fragment (4 panels, both tracks, 6 h at 15 s) against
the builtin backend query for the same data, in the same run.

Figures: fragment server time (median) with the backend query time as baseline (target:
Backline's overhead — fragment minus query — at most 1× the query time), and the storage cost
per sample. Runs in its own throw-away database.
"""

import statistics
import time

from django.db import connection
from django.test.utils import setup_databases, teardown_databases

RUNS = 7
HOURS = 6
STEP = 15
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, float("inf"))


def _seed(now):
    from metrics.models import Sample, ScrapeTarget, Series
    from tests.factories import ServiceFactory, SquadFactory

    squad = SquadFactory(slug="bench-squad")
    service = ServiceFactory(
        slug="bench-svc", owner=squad, metrics_urls=["http://127.0.0.1:1/metrics"]
    )
    n = HOURS * 3600 // STEP + 1
    times = [now - HOURS * 3600 + i * STEP for i in range(n)]
    rows = []
    for track, rps in (("stable", 40.0), ("canary", 4.0)):
        target = ScrapeTarget.objects.create(
            service=service, url=f"http://127.0.0.1:1/{track}", track=track
        )
        specs = [
            ("http_requests_total", {"code": "200"}, rps * 0.99),
            ("http_requests_total", {"code": "500"}, rps * 0.01),
        ]
        cum = 0.0
        for le in BUCKETS:
            cum = min(1.0, cum + 0.09) if le != float("inf") else 1.0
            specs.append(
                (
                    "http_request_duration_seconds_bucket",
                    {"le": "+Inf" if le == float("inf") else str(le)},
                    rps * cum,
                )
            )
        for name, extra, per_s in specs:
            labels = {"service": service.slug, "track": track, **extra}
            series = Series.objects.create(
                target=target,
                service=service,
                name=name,
                kind="counter",
                labels=labels,
                key=",".join(f'{k}="{v}"' for k, v in sorted(labels.items())),
                track=track,
                code=extra.get("code", ""),
                le=float(extra["le"].replace("+Inf", "inf")) if "le" in extra else None,
            )
            rows += [
                Sample(series_id=series.pk, t=t, value=per_s * STEP * i)
                for i, t in enumerate(times)
            ]
    Sample.objects.bulk_create(rows, batch_size=5000)
    return service, len(rows)


def run(report):
    from django.contrib.auth import get_user_model
    from django.test import Client

    from metrics.backends import range_spec
    from metrics.backends.builtin import BuiltinBackend

    test_settings = connection.settings_dict.setdefault("TEST", {})
    old_test_name = test_settings.get("NAME")
    test_settings["NAME"] = "bench_backline_monitoring"
    old = setup_databases(verbosity=0, interactive=False, keepdb=False, serialized_aliases=[])
    try:
        now = time.time()
        service, n_rows = _seed(now)
        user = get_user_model().objects.create_user("bench", password="x")
        client = Client()
        client.force_login(user)
        spec = range_spec("6h")
        backend = BuiltinBackend()
        url = f"/dashboards/services/{service.slug}/?range=6h&track=all&fragment=panels"
        # warm up both paths once
        backend.golden_signals(
            service, ["stable", "canary"], *spec.bounds(), spec.step, spec.window
        )
        resp = client.get(url, HTTP_HX_REQUEST="true")
        assert resp.status_code == 200 and b"chart-p99" in resp.content, resp.content[:500]
        queries, fragments = [], []
        for _ in range(RUNS):
            t = time.perf_counter()
            data = backend.golden_signals(
                service, ["stable", "canary"], *spec.bounds(), spec.step, spec.window
            )
            queries.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            client.get(url, HTTP_HX_REQUEST="true")
            fragments.append((time.perf_counter() - t) * 1000)
        points = sum(
            len(v)
            for tr in data.values()
            for k, v in tr.items()
            if k in ("request_rate", "error_ratio", "p95", "p99")
        )
        q, f = statistics.median(queries), statistics.median(fragments)
        report.add(
            "monitoring: backend query (builtin, 2 tracks, 6 h @ 15 s)",
            q,
            "ms",
            note=f"{n_rows} samples read, {points} points",
        )
        report.add(
            "monitoring: dashboard fragment (4 panels, 6 h @ 15 s)",
            f,
            "ms",
            baseline=q,
            baseline_label="backend query, same data, same run",
            target="overhead ≤ 1× query (ratio ≤ 2)",
            ok=(f - q) <= q,
        )
        report.add(
            "monitoring: overhead (fragment − query) / query",
            (f - q) / q,
            "×",
            target="≤ 1",
            ok=(f - q) <= q,
        )
        with connection.cursor() as cur:
            cur.execute("SELECT pg_total_relation_size('monitoring_sample')")
            size = cur.fetchone()[0]
        report.add(
            "monitoring: storage per sample (table + indexes)",
            size / n_rows,
            "bytes",
            note=f"{n_rows} samples",
        )
    finally:
        connection.close()
        teardown_databases(old, verbosity=0)
        if old_test_name is None:
            test_settings.pop("NAME", None)
        else:
            test_settings["NAME"] = old_test_name
