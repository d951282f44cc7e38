"""Metrics backends behind one small interface (see ``base.MetricsBackend``).

``get_backend()`` returns the backend chosen by ``settings.METRICS_BACKEND``.
"""

from django.conf import settings

from metrics.backends.base import (  # noqa: F401
    RANGES,
    BackendError,
    MetricsBackend,
    QueryResult,
    RangeSpec,
    range_spec,
)
from metrics.backends.builtin import BuiltinBackend
from metrics.backends.prometheus import PrometheusBackend


def get_backend(name: str | None = None) -> MetricsBackend:
    name = name or settings.METRICS_BACKEND
    if name == "prometheus":
        return PrometheusBackend(settings.PROMETHEUS_URL, timeout=settings.PROMETHEUS_TIMEOUT)
    return BuiltinBackend()
