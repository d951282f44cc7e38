"""Analysis: metrics read through the monitoring backend, measured at intervals, judged.

A metric (in an ``AnalysisTemplate``'s ``metrics`` list) is one of these kinds::

    {"name": "error-ratio", "kind": "error_ratio", "max": 0.05}          # canary ≤ 5 %
    {"name": "latency-p99", "kind": "p99", "max_ms": 500}                # canary p99 ≤ 500 ms
    {"name": "vs-stable", "kind": "error_ratio_vs_stable", "k": 1.5, "c": 0.01}
                                                    # canary ≤ stable × 1.5 + 0.01
    {"name": "queue", "kind": "query", "query": "sum(rate(jobs_failed_total[1m]))",
     "condition": "result < 0.5"}                   # raw query, success condition

and these common fields (defaults from the ``RELEASES_ANALYSIS_*`` settings): ``interval`` (s between
measurements), ``count`` (measurements wanted), ``window`` (s of data per measurement),
``min_requests`` (fewer canary requests in the window is *inconclusive*), ``failure_limit``
(0), ``inconclusive_limit`` (0), ``consecutive_error_limit`` (4).

No data, or too little traffic, is *inconclusive* — never a pass. A metric fails when its
failed measurements exceed ``failure_limit``; is inconclusive when inconclusive ones exceed
``inconclusive_limit``; errs when consecutive backend errors exceed
``consecutive_error_limit``; succeeds after ``count`` measurements within those limits.
"""

import operator
import re
import time

from django.conf import settings
from django.core.exceptions import ValidationError

from metrics.backends import BackendError
from releases.models import AnalysisTemplate

KINDS = ("error_ratio", "p99", "error_ratio_vs_stable", "query")
CONDITION = re.compile(r"^\s*result\s*(<=|<|>=|>|==|!=)\s*(-?\d+(?:\.\d+)?(?:e-?\d+)?)\s*$")
OPS = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
    "==": operator.eq,
    "!=": operator.ne,
}

DEFAULT_TEMPLATES = {
    "golden-signals": {
        "description": "Canary error ratio ≤ 5 % and canary p99 ≤ 1000 ms.",
        "metrics": [
            {"name": "error-ratio", "kind": "error_ratio", "max": 0.05},
            {"name": "latency-p99", "kind": "p99", "max_ms": 1000},
        ],
    },
    "compare-to-stable": {
        "description": "Canary error ratio ≤ stable × 2 + 1 %, canary p99 ≤ 1000 ms.",
        "metrics": [
            {"name": "error-ratio-vs-stable", "kind": "error_ratio_vs_stable", "k": 2, "c": 0.01},
            {"name": "latency-p99", "kind": "p99", "max_ms": 1000},
        ],
    },
}


def ensure_default_templates():
    for name, spec in DEFAULT_TEMPLATES.items():
        AnalysisTemplate.objects.get_or_create(name=name, defaults=spec)


def validate_metrics(metrics) -> list:
    if not isinstance(metrics, list) or not metrics:
        raise ValidationError("an analysis template has a non-empty list of metrics")
    names = set()
    for i, m in enumerate(metrics, 1):
        if not isinstance(m, dict):
            raise ValidationError(f"metric {i}: an object with name and kind")
        kind = m.get("kind")
        if kind not in KINDS:
            raise ValidationError(f"metric {i}: kind must be one of {', '.join(KINDS)}")
        name = str(m.get("name") or kind)
        if name in names:
            raise ValidationError(f"metric {i}: duplicate name {name!r}")
        names.add(name)
        if kind == "query":
            if not m.get("query") or not CONDITION.match(str(m.get("condition") or "")):
                raise ValidationError(
                    f"metric {name}: a query metric needs query and condition like 'result < 0.5'"
                )
        if kind == "error_ratio" and not isinstance(m.get("max"), int | float):
            raise ValidationError(f"metric {name}: error_ratio needs max (a fraction, e.g. 0.05)")
        if kind == "p99" and not isinstance(m.get("max_ms"), int | float):
            raise ValidationError(f"metric {name}: p99 needs max_ms")
    return metrics


def resolve_metrics(template, overrides: dict) -> list:
    """The template's metrics with defaults and the step's overrides filled in."""
    out = []
    for m in template.metrics:
        full = {
            "interval": settings.RELEASES_ANALYSIS_INTERVAL,
            "count": settings.RELEASES_ANALYSIS_COUNT,
            "window": settings.RELEASES_ANALYSIS_WINDOW,
            "min_requests": settings.RELEASES_MIN_REQUESTS,
            "failure_limit": 0,
            "inconclusive_limit": 0,
            "consecutive_error_limit": 4,
            **m,
        }
        full["name"] = str(full.get("name") or full["kind"])
        for key, value in overrides.items():
            if key != "template":
                full[key] = value
        out.append(full)
    return out


def condition_text(m) -> str:
    kind = m["kind"]
    if kind == "error_ratio":
        return f"canary error ratio ≤ {m['max'] * 100:g} %"
    if kind == "p99":
        return f"canary p99 ≤ {m['max_ms']:g} ms"
    if kind == "error_ratio_vs_stable":
        return f"canary error ratio ≤ stable × {m.get('k', 1):g} + {m.get('c', 0) * 100:g} %"
    return m.get("condition", "")


TRACKS = ("canary", "stable")


def signal_span(m, now: float) -> tuple[float, float, float, float]:
    """(start, end, step, window) of the golden-signal read that measures ``m`` at ``now``:
    the same floats for one release and for a batch read (``controller.Reads``)."""
    window = float(m["window"])
    step = max(window / 4, 1.0)
    return now - step, now, step, window


def _latest(points):
    for _, v in reversed(points or []):
        if v is not None:
            return v
    return None


def measure(backend, service, m, now=None) -> dict:
    """Take one measurement of metric ``m``: a dict of Measurement fields."""
    now = now or time.time()
    out = {"condition": condition_text(m)[:200]}
    kind = m["kind"]
    try:
        if kind == "query":
            results = backend.instant(m["query"], at=now)
            value = _latest(results[0].points) if results else None
            out["value"] = value
            op, num = CONDITION.match(m["condition"]).groups()
            out["threshold"] = float(num)
            if value is None:
                return {**out, "phase": "inconclusive", "message": "the query returned no data"}
            ok = OPS[op](value, float(num))
            return {**out, "phase": "successful" if ok else "failed"}
        start, end, step, window = signal_span(m, now)
        data = backend.golden_signals(service, list(TRACKS), start, end, step, window)
    except BackendError as exc:
        return {**out, "phase": "error", "message": f"metrics backend: {exc}"[:1000]}
    canary, stable = data.get("canary", {}), data.get("stable", {})
    c_rate, s_rate = _latest(canary.get("request_rate")), _latest(stable.get("request_rate"))
    out["canary_requests"] = None if c_rate is None else c_rate * window
    out["stable_requests"] = None if s_rate is None else s_rate * window
    if kind == "p99":
        c, s = _latest(canary.get("p99")), _latest(stable.get("p99"))
        out["value"] = None if c is None else c * 1000
        out["stable_value"] = None if s is None else s * 1000
        out["threshold"] = float(m["max_ms"])
    else:
        c, s = _latest(canary.get("error_ratio")), _latest(stable.get("error_ratio"))
        out["value"], out["stable_value"] = c, s
        if kind == "error_ratio":
            out["threshold"] = float(m["max"])
        elif s is not None:
            out["threshold"] = s * float(m.get("k", 1)) + float(m.get("c", 0))
    need = float(m.get("min_requests") or 0)
    if out["canary_requests"] is None or out["canary_requests"] < max(need, 1e-9):
        got = 0 if out["canary_requests"] is None else out["canary_requests"]
        return {
            **out,
            "phase": "inconclusive",
            # counts come from extrapolated rates: 4.8 must not read as "5 (need 5)"
            "message": f"too little canary traffic: {got:.3g} requests in {window:g} s "
            f"(need {need:g})",
        }
    if out.get("value") is None:
        return {**out, "phase": "inconclusive", "message": "no data for the canary"}
    if out.get("threshold") is None:
        return {**out, "phase": "inconclusive", "message": "no data for stable to compare with"}
    ok = out["value"] <= out["threshold"]
    return {**out, "phase": "successful" if ok else "failed"}


def metric_verdict(m, phases: list[str]) -> str:
    """running | successful | failed | inconclusive | error for one metric's phases so far."""
    failed = phases.count("failed")
    inconclusive = phases.count("inconclusive")
    consecutive_errors = 0
    for p in reversed(phases):
        if p != "error":
            break
        consecutive_errors += 1
    if failed > int(m.get("failure_limit", 0)):
        return "failed"
    if inconclusive > int(m.get("inconclusive_limit", 0)):
        return "inconclusive"
    if consecutive_errors > int(m.get("consecutive_error_limit", 4)):
        return "error"
    if len([p for p in phases if p != "error"]) >= int(m.get("count", 1)):
        return "successful"
    return "running"


def run_verdict(verdicts: list[str]) -> str:
    for outcome in ("failed", "error", "inconclusive"):
        if outcome in verdicts:
            return outcome
    if verdicts and all(v == "successful" for v in verdicts):
        return "successful"
    return "running"


OUTCOME_MESSAGE = {  # the finished run's message, before the failing metrics' reasons
    "successful": "every metric within its threshold",
    "failed": "analysis failed: ",
    "inconclusive": "analysis inconclusive, a human decides: ",
    "error": "analysis could not measure, a human decides: ",
}


def failure_reason(m, meas, verdict) -> str:
    """One metric's failed measurement, as the release page and its events say it."""
    if meas.message:
        return f"{m['name']}: {meas.message}"
    val = meas.value
    if m["kind"] == "p99":
        shown = f"{val:.0f} ms" if val is not None else "no data"
        thr = f"{meas.threshold:.0f} ms" if meas.threshold is not None else "?"
    elif m["kind"] == "query":
        shown, thr = f"{val:g}" if val is not None else "no data", meas.condition
    else:
        shown = f"{val * 100:.2f} %" if val is not None else "no data"
        thr = f"{meas.threshold * 100:.2f} %" if meas.threshold is not None else "?"
    return f"{m['name']} {verdict}: canary {shown} against {thr} ({meas.condition})"
