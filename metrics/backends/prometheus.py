"""The Prometheus backend: the HTTP API (`/api/v1/query`, `/api/v1/query_range`).

Golden signals are PromQL templates over the catalog labels ``service`` and ``track``
(Prometheus learns them from Backline's HTTP service discovery, `/api/v1/prometheus/sd`).
A service overrides one with the annotation ``backline.io/promql.<signal>``, e.g.
``backline.io/promql.request_rate: sum(rate(nginx_requests_total{app="{service}"}[{window}]))``.
Placeholders: ``{service}``, ``{track}``, ``{window}`` (e.g. ``60s``), ``{selector}``
(``service="<slug>",track="<track>"``).
"""

import math
import time

import requests

from metrics.backends.base import BackendError, MetricsBackend, QueryResult
from metrics.signals import eval_times

# Plain strings (not str.format): the placeholders below are replaced textually.
_REQ = "http_requests_total{{selector}}"
_ERR = 'http_requests_total{{selector},code=~"5.."}'
_BUCKET = "http_request_duration_seconds_bucket{{selector}}"

PROMQL_TEMPLATES = {
    "request_rate": "sum(rate(" + _REQ + "[{window}]))",
    # `or vector(0)`: traffic with no 5xx series at all is 0 %, while no traffic (0/0 = NaN,
    # or an empty denominator) stays *no data*.
    "error_ratio": "(sum(rate("
    + _ERR
    + "[{window}])) or vector(0)) / sum(rate("
    + _REQ
    + "[{window}]))",
    "p50": "histogram_quantile(0.5, sum by (le) (rate(" + _BUCKET + "[{window}])))",
    "p95": "histogram_quantile(0.95, sum by (le) (rate(" + _BUCKET + "[{window}])))",
    "p99": "histogram_quantile(0.99, sum by (le) (rate(" + _BUCKET + "[{window}])))",
}


def _esc(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"')


def signal_query(service, track: str, signal: str, window: float) -> str:
    """The PromQL for one golden signal of a service and track (per-service override aware)."""
    template = (service.annotations or {}).get(f"backline.io/promql.{signal}") or PROMQL_TEMPLATES[
        signal
    ]
    selector = f'service="{_esc(service.slug)}",track="{_esc(track)}"'
    return (
        template.replace("{selector}", selector)
        .replace("{service}", _esc(service.slug))
        .replace("{track}", _esc(track))
        .replace("{window}", f"{int(window)}s")
    )


def _value(text):
    try:
        v = float(text)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) or math.isinf(v) else v


class PrometheusBackend(MetricsBackend):
    name = "prometheus"

    def __init__(self, url: str, timeout: float = 5.0):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()

    def _get(self, path: str, params: dict):
        try:
            resp = self.session.get(f"{self.url}{path}", params=params, timeout=self.timeout)
        except requests.Timeout as exc:
            raise BackendError(
                f"Prometheus at {self.url} did not answer within {self.timeout:g}s"
            ) from exc
        except requests.RequestException as exc:
            raise BackendError(
                f"Prometheus at {self.url} is unreachable: {exc.__class__.__name__}"
            ) from exc
        try:
            body = resp.json()
        except ValueError as exc:
            raise BackendError(
                f"Prometheus at {self.url} answered HTTP {resp.status_code} without JSON"
            ) from exc
        if body.get("status") != "success":
            raise BackendError(
                f"Prometheus rejected the query ({body.get('errorType', resp.status_code)}): "
                f"{body.get('error', 'unknown error')}"
            )
        return body["data"]

    def instant(self, query, at=None):
        params = {"query": query}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self._get("/api/v1/query", params)
        if data["resultType"] == "scalar":
            t, v = data["result"]
            return [QueryResult({}, [(float(t), _value(v))])]
        return [
            QueryResult(r.get("metric", {}), [(float(r["value"][0]), _value(r["value"][1]))])
            for r in data["result"]
        ]

    def range(self, query, start, end, step):
        step = max(float(step), 1.0)
        start = math.ceil(start / step) * step
        data = self._get(
            "/api/v1/query_range",
            {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"},
        )
        return [
            QueryResult(r.get("metric", {}), [(float(t), _value(v)) for t, v in r["values"]])
            for r in data["result"]
        ]

    def golden_signals(self, service, tracks, start, end, step, window):
        times = eval_times(start, end, step)
        result = {}
        for track in tracks:
            data = {}
            for signal in PROMQL_TEMPLATES:
                series = self.range(signal_query(service, track, signal, window), start, end, step)
                got = {}
                for s in series[:1]:
                    got = {round(t, 3): v for t, v in s.points}
                data[signal] = [(t, got.get(round(t, 3))) for t in times]
            result[track] = data
        return result

    def current_signals(self, services, tracks, window, signals=()):
        """One instant query per service, track and wanted signal."""
        wanted = list(signals or PROMQL_TEMPLATES)
        return {
            s.pk: {t: {sg: self.current_signal(s, t, sg, window) for sg in wanted} for t in tracks}
            for s in services
        }

    def current_signal(self, service, track, signal, window):
        results = self.instant(signal_query(service, track, signal, window), at=time.time())
        return results[0].points[-1][1] if results else None
