"""Assembling dashboards: one backend call per refresh, charts drawn on the server."""

import time

from metrics.backends import BackendError, get_backend, range_spec
from monitoring.charts import format_value, line_chart
from monitoring.models import SIGNAL_LABELS, TRACKS
from portal.registry import registry
from squads.models import Service

PANELS = ("request_rate", "error_ratio", "p95", "p99")


def parse_track(value: str | None) -> list[str]:
    if not value or value == "all":
        return list(TRACKS)
    if value not in TRACKS:
        raise ValueError(f"track must be one of all, {', '.join(TRACKS)} (got {value!r})")
    return [value]


def _last(points):
    return next((v for _, v in reversed(points) if v is not None), None)


def service_dashboard(service, range_key="1h", track="all", now=None, panels=PANELS, backend=None):
    """Context for the panels fragment: charts, current values, query time or error."""
    spec = range_spec(range_key)
    tracks = parse_track(track)
    start, end = spec.bounds(now)
    backend = backend or get_backend()
    ctx = {
        "service": service,
        "range": spec.key,
        "track": track or "all",
        "tracks": tracks,
        "backend": backend.name,
        "error": None,
        "charts": [],
        "current": [],
    }
    t = time.perf_counter()
    try:
        data = backend.golden_signals(service, tracks, start, end, spec.step, spec.window)
    except BackendError as exc:
        ctx["error"] = str(exc)
        return ctx
    finally:
        ctx["query_ms"] = (time.perf_counter() - t) * 1000
    marks = [m for fn in registry.chart_marks for m in fn(service, start, end)]
    for signal in panels:
        title, unit = SIGNAL_LABELS[signal]
        series = {tr: data[tr][signal] for tr in tracks}
        svg = line_chart(
            title,
            unit,
            series,
            start,
            end,
            chart_id=f"chart-{signal}",
            marks=marks if signal == "request_rate" else None,
        )
        ctx["charts"].append({"signal": signal, "title": title, "svg": svg})
    for tr in tracks:
        row = {"track": tr, "values": []}
        has_data = False
        for signal in ("request_rate", "error_ratio", "p50", "p95", "p99"):
            v = _last(data[tr][signal])
            has_data = has_data or v is not None
            row["values"].append(
                {
                    "signal": signal,
                    "label": SIGNAL_LABELS[signal][0],
                    "text": format_value(v, SIGNAL_LABELS[signal][1]),
                    "none": v is None,
                }
            )
        row["has_data"] = has_data
        ctx["current"].append(row)
    ctx["rendered_at"] = end
    return ctx


def squad_overview(squad, range_key="1h", now=None, backend=None):
    """Per service of the squad: stable track request rate / error ratio / p95 sparkline-sized
    charts and current values."""
    spec = range_spec(range_key)
    start, end = spec.bounds(now)
    backend = backend or get_backend()
    rows, error = [], None
    services = list(Service.objects.filter(owner=squad).order_by("name"))
    for service in services:
        row = {"service": service, "values": [], "configured": bool(service.metrics_urls)}
        if backend.name == "builtin" and not row["configured"]:
            data = None  # nothing scraped: say so instead of showing a row of "no data"
        elif error is None:
            try:
                data = backend.golden_signals(
                    service, ["stable"], start, end, spec.step, spec.window
                )
            except BackendError as exc:
                error = str(exc)
                data = None
        else:
            data = None
        if data:
            for signal in ("request_rate", "error_ratio", "p95"):
                title, unit = SIGNAL_LABELS[signal]
                v = _last(data["stable"][signal])
                row["values"].append(
                    {"label": title, "text": format_value(v, unit), "none": v is None}
                )
        rows.append(row)
    return {"rows": rows, "error": error, "range": spec.key, "backend": backend.name}
