"""The builtin backend: answers from samples Backline scraped itself (``monitoring.scrape``).

Queries understand a small PromQL subset, enough for alert rules and ad-hoc checks:
``name{label="v",label!="v",label=~"re",label!~"re"}``, ``rate(<selector>[5m])``,
``increase(<selector>[5m])``, ``sum(...)`` around either, and
``histogram_quantile(0.95, rate(<name>_bucket{...}[5m]))`` (summed by ``le``).
"""

import re

from django.db import connection

from monitoring import signals as sig
from monitoring.backends.base import BackendError, MetricsBackend, QueryResult
from monitoring.models import Sample, Series

REQUESTS_METRIC = "http_requests_total"
LATENCY_METRIC = "http_request_duration_seconds"
SCRAPE_LOOKBACK = 300  # instant selectors look back this far for a sample

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')
_SELECTOR = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?\s*(\[[^\]]+\])?\s*$")


def parse_duration(text: str) -> float:
    m = _DURATION.match(text.strip())
    if not m:
        raise BackendError(f"bad duration {text!r}: use e.g. 30s, 5m, 1h")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_selector(text: str):
    """-> (name, [(label, op, value)], window seconds | None)"""
    m = _SELECTOR.match(text)
    if not m:
        raise BackendError(f"cannot parse selector {text!r}")
    name, body, window = m.group(1), m.group(2), m.group(3)
    matchers = []
    if body:
        inner = body[1:-1]
        pos = 0
        while pos < len(inner):
            mm = _MATCHER.match(inner, pos)
            if not mm:
                if inner[pos:].strip():
                    raise BackendError(f"cannot parse label matchers in {body!r}")
                break
            matchers.append((mm.group(1), mm.group(2), mm.group(3)))
            pos = mm.end()
    return name, matchers, parse_duration(window[1:-1]) if window else None


def _match(labels: dict, matchers) -> bool:
    for label, op, value in matchers:
        have = str(labels.get(label, ""))
        if op == "=" and have != value:
            return False
        if op == "!=" and have == value:
            return False
        if op == "=~" and not re.fullmatch(value, have):
            return False
        if op == "!~" and re.fullmatch(value, have):
            return False
    return True


def _strip_call(text: str, fn: str):
    text = text.strip()
    m = re.match(rf"^{fn}\s*\((.*)\)$", text, re.S)
    return m.group(1) if m else None


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
    out: dict = {}
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
        req, bucket = self.metric_names(service)
        rows = list(
            Series.objects.filter(service=service, name__in=[req, bucket], track__in=list(tracks))
            .values_list("id", "name", "track", "code", "le")
            .order_by()
        )
        samples = load_samples([r[0] for r in rows], start - window, end, step)
        times = sig.eval_times(start, end, step)
        result = {}
        for track in tracks:
            req_cols, err_cols, le_cols = [], [], {}
            for sid, name, s_track, code, le in rows:
                if s_track != track or sid not in samples:
                    continue
                ts, vs = samples[sid]
                col = sig.rate(ts, vs, times, window)
                if name == req:
                    req_cols.append(col)
                    if code.startswith("5"):
                        err_cols.append(col)
                elif le is not None:
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

    # --- queries (small PromQL subset) --------------------------------------------------------
    def _select(self, name, matchers):
        qs = Series.objects.filter(name=name)
        for label, op, value in matchers:
            if op == "=" and label == "service":
                qs = qs.filter(service__slug=value)
            elif op == "=" and label == "track":
                qs = qs.filter(track=value)
        return [
            (sid, labels)
            for sid, labels in qs.values_list("id", "labels")
            if _match(labels, matchers)
        ]

    def _evaluate(self, query, times, step):
        query = query.strip()
        inner = _strip_call(query, "histogram_quantile")
        if inner is not None:
            q_text, _, rest = inner.partition(",")
            try:
                q = float(q_text)
            except ValueError as exc:
                raise BackendError(
                    f"histogram_quantile needs a number first, got {q_text!r}"
                ) from exc
            rest = _strip_call(rest, "sum by (le)") or rest
            rated = self._evaluate(rest, times, step)
            by_le: dict = {}
            for res in rated:
                le = res.labels.get("le")
                if le is None:
                    continue
                by_le.setdefault(float(le), []).append([v for _, v in res.points])
            cols = {le: sig.sum_values(c) for le, c in by_le.items()}
            values = sig.quantile_over_time(q, cols) if cols else []
            if not values:
                return []
            return [QueryResult({}, list(zip(times, values, strict=True)))]
        inner = _strip_call(query, "sum")
        if inner is not None:
            parts = self._evaluate(inner, times, step)
            if not parts:
                return []
            total = sig.sum_values([[v for _, v in r.points] for r in parts])
            return [QueryResult({}, list(zip(times, total, strict=True)))]
        for fn in ("rate", "increase"):
            inner = _strip_call(query, fn)
            if inner is None:
                continue
            name, matchers, window = parse_selector(inner)
            if window is None:
                raise BackendError(f"{fn}() needs a range selector like {name}[5m]")
            selected = self._select(name, matchers)
            samples = load_samples([s for s, _ in selected], times[0] - window, times[-1], step)
            out = []
            for sid, labels in selected:
                if sid not in samples:
                    continue
                ts, vs = samples[sid]
                col = sig.rate(ts, vs, times, window)
                if fn == "increase":
                    col = [None if v is None else v * window for v in col]
                out.append(QueryResult(labels, list(zip(times, col, strict=True))))
            return out
        if "(" in query:
            raise BackendError(
                f"the builtin backend does not understand {query!r}; it supports selectors, "
                "rate(), increase(), sum() and histogram_quantile()"
            )
        name, matchers, window = parse_selector(query)
        if window is not None:
            raise BackendError("a range selector needs rate() or increase() around it")
        selected = self._select(name, matchers)
        samples = load_samples(
            [s for s, _ in selected], times[0] - SCRAPE_LOOKBACK, times[-1], step
        )
        out = []
        for sid, labels in selected:
            if sid in samples:
                ts, vs = samples[sid]
                col = sig.last_value(ts, vs, times, SCRAPE_LOOKBACK)
                out.append(QueryResult(labels, list(zip(times, col, strict=True))))
        return out

    def range(self, query, start, end, step):
        times = sig.eval_times(start, end, step)
        if not times:
            return []
        return self._evaluate(query, times, step)

    def instant(self, query, at=None):
        import time

        at = at if at is not None else time.time()
        results = self._evaluate(query, [at], 1)
        return [r for r in results if r.points and r.points[-1][1] is not None]
