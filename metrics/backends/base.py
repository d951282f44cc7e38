"""The metrics backend interface and the ranges the dashboards offer."""

import time
from dataclasses import dataclass, field


class BackendError(Exception):
    """A query could not be answered (server down, timeout, bad query). Shown to the user."""


@dataclass(frozen=True)
class RangeSpec:
    key: str
    seconds: int
    step: int  # resolution of the charts
    window: int  # rate window

    def bounds(self, now: float | None = None):
        end = now if now is not None else time.time()
        return end - self.seconds, end


# 15 s resolution up to 6 h (4 panels × 1440 points at 6 h), coarser beyond.
RANGES = {
    "15m": RangeSpec("15m", 15 * 60, 15, 60),
    "1h": RangeSpec("1h", 3600, 15, 60),
    "6h": RangeSpec("6h", 6 * 3600, 15, 60),
    "24h": RangeSpec("24h", 24 * 3600, 60, 120),
    "7d": RangeSpec("7d", 7 * 86400, 300, 600),
}


def range_spec(key: str | None) -> RangeSpec:
    """The RangeSpec for ``key``; ValueError with the allowed values otherwise."""
    key = key or "1h"
    if key not in RANGES:
        raise ValueError(f"range must be one of {', '.join(RANGES)} (got {key!r})")
    return RANGES[key]


@dataclass
class QueryResult:
    """One result series: its labels and [(t, value | None), ...]."""

    labels: dict
    points: list = field(default_factory=list)


class MetricsBackend:
    name = "base"

    def instant(self, query: str, at: float | None = None) -> list[QueryResult]:
        raise NotImplementedError

    def range(self, query: str, start: float, end: float, step: float) -> list[QueryResult]:
        raise NotImplementedError

    def golden_signals(
        self, service, tracks, start: float, end: float, step: float, window: float
    ) -> dict:
        """{track: {signal: [(t, value | None), ...]}} for request_rate, error_ratio,
        p50, p95, p99 (latency in seconds, error ratio as a fraction)."""
        raise NotImplementedError

    def golden_signals_many(self, services, tracks, start, end, step, window, signals=()) -> dict:
        """{service id: golden_signals(service, ...)}; the builtin backend reads them at once
        (given ``signals``, only the series those read: the others may answer no data)."""
        return {s.pk: self.golden_signals(s, tracks, start, end, step, window) for s in services}

    def current_signal(self, service, track: str, signal: str, window: float) -> float | None:
        """The latest value of one golden signal (for alert rules)."""
        return self.current_signals([service], [track], window)[service.pk][track].get(signal)

    def current_signals(self, services, tracks, window: float, signals=()) -> dict:
        """{service id: {track: {signal: latest value or None}}} (alert rules in batches; a
        backend may answer only ``signals`` when given)."""
        now = time.time()
        step = max(window / 4, 1)
        data = self.golden_signals_many(
            services, tracks, now - step, now, step, window, signals=signals
        )
        return {
            pk: {
                track: {name: latest(points) for name, points in (per.get(track) or {}).items()}
                for track in tracks
            }
            for pk, per in data.items()
        }


def latest(points):
    """The last non-None value of [(t, value), ...] (None when there is none)."""
    for _, v in reversed(points or []):
        if v is not None:
            return v
    return None
