"""One demo service instance: a real HTTP server instrumented with prometheus_client.

    python -m monitoring.fleet_app --service checkout --track canary --port 9101

``GET /`` (any path but the ones below) answers like a service would: status 500 for the
configured share of requests (spread evenly), latency drawn around the configured median (observed in the
histogram; the handler sleeps for a small part of it so the process stays cheap).
``GET /metrics`` is the Prometheus exposition. ``POST /control`` with JSON
``{"error_rate": 0.2, "latency_ms": 120}`` changes behaviour at run time.
Metrics: ``http_requests_total{service,track,code}`` and
``http_request_duration_seconds{service,track}`` (histogram).
"""

import argparse
import json
import random
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0)


class State:
    def __init__(self, error_rate, latency_ms, sleep_fraction):
        self.error_rate = error_rate
        self.latency_ms = latency_ms
        self.sleep_fraction = sleep_fraction
        # errors are spread evenly (every 1/error_rate-th request, from a random phase), so a
        # short analysis window sees the configured ratio, not a binomial draw around it
        self.error_debt = random.random()
        self.lock = threading.Lock()

    def next_is_error(self) -> bool:
        with self.lock:
            self.error_debt += self.error_rate
            if self.error_debt >= 1.0:
                self.error_debt -= 1.0
                return True
            return False


def _instruments(registry):
    """The request counter and the latency histogram, registered in ``registry``."""
    requests_total = Counter(
        "http_requests_total",
        "HTTP requests served",
        ["service", "track", "code"],
        registry=registry,
    )
    latency = Histogram(
        "http_request_duration_seconds",
        "HTTP request latency",
        ["service", "track"],
        buckets=BUCKETS,
        registry=registry,
    )
    return requests_total, latency


class _Handler(BaseHTTPRequestHandler):
    """One demo instance's requests; ``make_server`` subclasses it with the instance's state."""

    protocol_version = "HTTP/1.1"
    service = track = ""
    registry: CollectorRegistry
    requests_total: Counter
    latency: Histogram
    state: State

    def log_message(self, *args):
        pass

    def _send(self, code, body: bytes, ctype="text/plain; charset=utf-8"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Track", self.track)  # which track answered (behind a load balancer)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.startswith("/metrics"):
            self._send(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)
            return
        if self.path.startswith("/healthz"):
            self._send(200, b"ok")
            return
        state = self.state
        with state.lock:
            lat = state.latency_ms
        seconds = max(random.lognormvariate(0, 0.5) * lat / 1000.0, 0.0005)
        if state.sleep_fraction:
            time.sleep(min(seconds * state.sleep_fraction, 0.5))
        code = 500 if state.next_is_error() else 200
        self.requests_total.labels(self.service, self.track, str(code)).inc()
        self.latency.labels(self.service, self.track).observe(seconds)
        self._send(code, b"error\n" if code == 500 else b"ok\n")

    def do_POST(self):
        if not self.path.startswith("/control"):
            self._send(404, b"not found\n")
            return
        state = self.state
        length = int(self.headers.get("Content-Length") or 0)
        try:
            data = json.loads(self.rfile.read(length) or b"{}")
            with state.lock:
                if "error_rate" in data:
                    state.error_rate = min(max(float(data["error_rate"]), 0.0), 1.0)
                if "latency_ms" in data:
                    state.latency_ms = max(float(data["latency_ms"]), 0.1)
        except (ValueError, TypeError) as exc:
            self._send(400, f"bad control body: {exc}\n".encode())
            return
        body = json.dumps({"error_rate": state.error_rate, "latency_ms": state.latency_ms})
        self._send(200, body.encode(), "application/json")


def make_server(
    service, track, port, error_rate=0.01, latency_ms=40.0, sleep_fraction=0.0, host="127.0.0.1"
):
    registry = CollectorRegistry()
    requests_total, latency = _instruments(registry)
    handler = type(
        "Handler",
        (_Handler,),
        {
            "service": service,
            "track": track,
            "registry": registry,
            "requests_total": requests_total,
            "latency": latency,
            "state": State(error_rate, latency_ms, sleep_fraction),
        },
    )
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--service", required=True)
    p.add_argument("--track", default="stable")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--error-rate", type=float, default=0.01)
    p.add_argument("--latency-ms", type=float, default=40.0)
    p.add_argument("--sleep-fraction", type=float, default=0.0)
    args = p.parse_args(argv)
    server = make_server(
        args.service,
        args.track,
        args.port,
        args.error_rate,
        args.latency_ms,
        args.sleep_fraction,
        args.host,
    )

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(
        f"listening on {args.host}:{args.port} service={args.service} track={args.track}",
        flush=True,
    )
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
