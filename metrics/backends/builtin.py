"""The builtin backend: answers from samples Backline scraped itself (``metrics.scrape``).

Queries are a PromQL subset (``metrics.backends.promql``, evaluated by ``promql_eval`` with
Prometheus' semantics); anything outside it is a BackendError naming the construct.
"""

import math
import time
from bisect import bisect_right

from django.db import connection

from metrics import signals as sig
from metrics.backends import promql
from metrics.backends.base import MetricsBackend, QueryResult
from metrics.backends.promql_eval import NAME, Evaluator, RawSeries, Scalar
from metrics.models import Sample, Series

REQUESTS_METRIC = "http_requests_total"
LATENCY_METRIC = "http_request_duration_seconds"


def _match(labels: dict, matchers) -> bool:
    for label, op, value in matchers:
        have = str(labels.get(label, ""))
        if op == "=" and have != value:
            return False
        if op == "!=" and have == value:
            return False
        if op == "=~" and not promql.compile_regex(value).fullmatch(have):
            return False
        if op == "!~" and promql.compile_regex(value).fullmatch(have):
            return False
    return True


def load_samples(series_ids, start: float, end: float, step: float) -> dict:
    """{series_id: (ts, vs)} in [start, end]; downsampled to the first and last sample per step
    bucket when the step is coarser than the scrape interval (MIN/MAX of the value are those
    samples' values because counters are stored monotonic)."""
    if not series_ids:
        return {}
    table = Sample._meta.db_table
    ids = list(series_ids)
    placeholders = ",".join(["%s"] * len(ids))
    if step > 30:
        bucket = "FLOOR(t / %s)" if connection.vendor == "postgresql" else "CAST(t / %s AS INTEGER)"
        sql = (
            f"SELECT series_id, MIN(t), MIN(value), MAX(t), MAX(value) FROM {table} "
            f"WHERE series_id IN ({placeholders}) AND t >= %s AND t <= %s "
            f"GROUP BY series_id, {bucket} ORDER BY 1, 2"
        )
        out: dict = {}
        with connection.cursor() as cur:
            cur.execute(sql, [*ids, start, end, step])
            for sid, t0, v0, t1, v1 in cur.fetchall():
                ts, vs = out.setdefault(sid, ([], []))
                ts.append(t0)
                vs.append(v0)
                if t1 != t0:
                    ts.append(t1)
                    vs.append(v1)
        return out
    elif connection.vendor == "postgresql":
        # one row per series with both arrays: the grouping happens in PostgreSQL, not Python
        sql = (
            f"SELECT series_id, array_agg(t ORDER BY t), array_agg(value ORDER BY t) FROM {table} "
            f"WHERE series_id IN ({placeholders}) AND t >= %s AND t <= %s GROUP BY series_id"
        )
        with connection.cursor() as cur:
            cur.execute(sql, [*ids, start, end])
            return {sid: (ts, vs) for sid, ts, vs in cur.fetchall()}
    else:
        sql = (
            f"SELECT series_id, t, value FROM {table} "
            f"WHERE series_id IN ({placeholders}) AND t >= %s AND t <= %s ORDER BY 1, 2"
        )
        params = [*ids, start, end]
    out = {}
    with connection.cursor() as cur:
        cur.execute(sql, params)
        rows = cur.fetchall()
    current, ts, vs = None, None, None
    for sid, t, v in rows:
        if sid != current:
            current, ts, vs = sid, [], []
            out[sid] = (ts, vs)
        ts.append(t)
        vs.append(v)
    return out


class BuiltinBackend(MetricsBackend):
    name = "builtin"

    # --- golden signals ---------------------------------------------------------------------
    def metric_names(self, service):
        ann = service.annotations or {}
        req = ann.get("backline.io/requests-metric") or REQUESTS_METRIC
        lat = ann.get("backline.io/latency-metric") or LATENCY_METRIC
        return req, f"{lat}_bucket"

    def golden_signals(self, service, tracks, start, end, step, window):
        return self.golden_signals_many([service], tracks, start, end, step, window)[service.pk]

    def golden_signals_many(self, services, tracks, start, end, step, window, signals=()):
        """``golden_signals`` of many services from one series query and one sample read;
        given ``signals``, of the series they read only (request counters for the request rate
        and error ratio, histogram buckets for the latencies)."""
        names = {s.pk: self.metric_names(s) for s in services}
        wanted = set(signals)
        reads = [  # which of (requests, buckets) the wanted signals read
            not wanted or bool(wanted & {"request_rate", "error_ratio"}),
            not wanted or bool(wanted & {"p50", "p95", "p99"}),
        ]
        rows = list(
            Series.objects.filter(
                service_id__in=list(names),
                name__in={
                    n for pair in names.values() for n, r in zip(pair, reads, strict=True) if r
                },
                track__in=list(tracks),
            )
            .values_list("service_id", "id", "name", "track", "code", "le", "resets")
            .order_by()
        )
        samples = load_samples([r[1] for r in rows], start - window, end, step)
        times = sig.eval_times(start, end, step)
        by_service: dict = {}
        for row in rows:
            by_service.setdefault(row[0], []).append(row[1:])
        return {
            pk: _signals(pair, by_service.get(pk, []), samples, tracks, times, window)
            for pk, pair in names.items()
        }

    # --- queries (PromQL subset, see metrics.backends.promql) ------------------------------
    def _select(self, node) -> list:
        """[(series id, name, labels, resets)] matching a selector."""
        name_matchers = [m for m in node.matchers if m[0] == NAME]
        matchers = [m for m in node.matchers if m[0] != NAME]
        if node.name is not None:
            names = [node.name]
        elif any(op == "=" for _, op, _ in name_matchers):
            names = [v for _, op, v in name_matchers if op == "="][:1]
        else:
            names = list(Series.objects.values_list("name", flat=True).distinct().order_by())
        names = [n for n in names if _match({NAME: n}, name_matchers)]
        qs = Series.objects.filter(name__in=names)
        for label, op, value in matchers:
            if op == "=" and label == "service":
                qs = qs.filter(service__slug=value)
            elif op == "=" and label == "track":
                qs = qs.filter(track=value)
        return [
            row
            for row in qs.values_list("id", "name", "labels", "resets").order_by()
            if _match(row[2], matchers)
        ]

    def _loader(self):
        def load(node, start, end):
            selected = self._select(node)
            # every sample (step 1): the downsampled read is only right for monotonic counters
            samples = load_samples([row[0] for row in selected], start, end, 1)
            out = []
            for sid, name, labels, resets in selected:
                if sid in samples:
                    ts, vs = samples[sid]
                    raw = raw_values(ts, vs, resets)
                    out.append(RawSeries({**labels, NAME: name}, list(ts), list(vs), raw))
            return out

        return load

    def query_value(self, query, times):
        """The evaluator's own answer (``Scalar`` or ``Vector``) at ``times``."""
        return Evaluator(self._loader(), times).evaluate(promql.parse(query))

    def _evaluate(self, query, times):
        """QueryResults; NaN and ±Inf become None (no data), as the Prometheus backend's."""
        result = self.query_value(query, times)
        if isinstance(result, Scalar):
            return [QueryResult({}, _points(times, result.values))]
        return [QueryResult(labels, _points(times, values)) for labels, values in result.series]

    def range(self, query, start, end, step):
        times = sig.eval_times(start, end, step)
        if not times:
            promql.parse(query)
            return []
        return self._evaluate(query, times)

    def instant(self, query, at=None):
        at = at if at is not None else time.time()
        results = self._evaluate(query, [at])
        return [r for r in results if r.points and r.points[-1][1] is not None]


def _signals(names, rows, samples, tracks, times, window) -> dict:
    """One service's golden signals per track from its series ``rows`` and their ``samples``."""
    req, bucket = names
    result = {}
    for track in tracks:
        req_cols, err_cols, le_cols = [], [], {}
        for sid, name, s_track, code, le, resets in rows:
            if s_track != track or sid not in samples:
                continue
            ts, vs = samples[sid]
            col = sig.rate(ts, vs, times, window, _first_raw(ts, vs, resets))
            if name == req:
                req_cols.append(col)
                if code.startswith("5"):
                    err_cols.append(col)
            elif name == bucket and le is not None:
                le_cols.setdefault(le, []).append(col)
        total = sig.sum_values(req_cols) if req_cols else [None] * len(times)
        errors = sig.sum_values(err_cols) if err_cols else None
        bucket_rates = {le: sig.sum_values(cols) for le, cols in le_cols.items()}
        quantiles = sig.quantiles_over_time((0.5, 0.95, 0.99), bucket_rates)
        data = {
            "request_rate": list(zip(times, total, strict=True)),
            "error_ratio": list(zip(times, sig.ratio(errors, total), strict=True)),
        }
        for key, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            values = quantiles[q] if bucket_rates else [None] * len(times)
            data[key] = list(zip(times, values, strict=True))
        result[track] = data
    return result


def _points(times, values) -> list:
    return [
        (t, v if v is not None and math.isfinite(v) else None)
        for t, v in zip(times, values, strict=True)
    ]


def _first_raw(ts, vs, resets):
    """``sig.rate``'s ``first_raw``: sample i's exposed value (stored value minus offset)."""
    if not resets:
        return None
    return lambda i: raw_values(ts[i : i + 1], vs[i : i + 1], resets)[0]


def raw_values(ts, vs, resets) -> list:
    """The values as the target exposed them: stored counter values minus the reset offset in
    force at each sample (``Series.resets``: [[t, offset from t on], ...])."""
    if not resets:
        return list(vs)
    marks = [r[0] for r in resets]
    out = []
    for t, v in zip(ts, vs, strict=True):
        k = bisect_right(marks, t) - 1
        out.append(v - resets[k][1] if k >= 0 else v)
    return out
