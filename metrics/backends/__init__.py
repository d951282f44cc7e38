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


def get_backend(name: str | None = None) -> MetricsBackend:
    name = name or settings.METRICS_BACKEND
    if name == "prometheus":
        from metrics.backends.prometheus import PrometheusBackend

        return PrometheusBackend(settings.PROMETHEUS_URL, timeout=settings.PROMETHEUS_TIMEOUT)
    from metrics.backends.builtin import BuiltinBackend

    return BuiltinBackend()
