"""Backline's own Prometheus metrics, served at /metrics."""

from prometheus_client import Counter, Gauge, Histogram

HTTP_LATENCY = Histogram(
    "backline_http_request_duration_seconds",
    "Latency of HTTP requests served by Backline",
    ["view", "method", "status"],
)
PIPELINE_RUNS = Counter(
    "backline_pipeline_runs_total", "Pipeline runs finished, by final status", ["status"]
)
PIPELINE_DURATION = Histogram(
    "backline_pipeline_run_duration_seconds", "Duration of finished pipeline runs"
)
QUEUE_DEPTH = Gauge("backline_queue_depth", "Jobs waiting in the Celery queue", ["queue"])
RELEASE_TRANSITIONS = Counter(
    "backline_release_transitions_total", "Release state transitions", ["to"]
)
LEAN_READS = Counter(
    "backline_lean_reads_total",
    "API reads offered to the lean read path (portal.leanpath), by who answered them",
    ["outcome"],
)
