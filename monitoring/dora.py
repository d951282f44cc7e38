"""DORA metrics as pure functions over deployment records and incidents.

Inputs are plain records (``Deployment``, ``Incident``) so the source can change without
touching the maths:

- **Deployments** — finished production releases (``releases.dora.deployments_from_releases``:
  succeeded = deployment; aborted/failed = failed change) when the services have any in the
  window; otherwise *successful pipeline runs on the service's default branch*
  (``pipelines.dora.deployments_from_pipeline_runs``). Both register as deployment sources
  (``portal.registry``). ``report(source=...)`` forces one. ``commit_at`` is
  the time the change entered the pipeline (run created: the push webhook or manual trigger;
  for a release without a run, its creation); Backline does not store commit timestamps yet,
  so lead time is *trigger → deployed*.
- **Incidents** — alerts that fired (``fired_at`` → ``resolved_at``); unresolved ones count as
  open and are left out of time to restore.

Performance levels (thresholds from the DORA / Accelerate State of DevOps reports, 2019–2023;
a value exactly on a threshold gets the better level):

==========================  ==================  ==============  ===============  =========
metric                      elite               high            medium           low
==========================  ==================  ==============  ===============  =========
deployment frequency        ≥ 1 per day         ≥ 1 per week    ≥ 1 per month    less
lead time for changes       ≤ 1 day             ≤ 1 week        ≤ 1 month        more
change failure rate         ≤ 15 %              ≤ 30 %          ≤ 45 %           more
time to restore service     ≤ 1 hour            ≤ 1 day         ≤ 1 week         more
==========================  ==================  ==============  ===============  =========
"""

import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from monitoring.models import Alert
from portal.registry import registry

DAY = 86400.0
LEVELS = ("elite", "high", "medium", "low")
# (elite, high, medium) bounds; "higher is better" for frequency, "lower is better" otherwise
THRESHOLDS = {
    "deployment_frequency": (1.0, 1 / 7, 1 / 30),  # deployments per day
    "lead_time": (DAY, 7 * DAY, 30 * DAY),  # seconds
    "change_failure_rate": (0.15, 0.30, 0.45),  # fraction
    "time_to_restore": (3600.0, DAY, 7 * DAY),  # seconds
}
HIGHER_IS_BETTER = {"deployment_frequency"}
UNITS = {
    "deployment_frequency": "per day",
    "lead_time": "s",
    "change_failure_rate": "ratio",
    "time_to_restore": "s",
}
# an incident starting this soon after a deployment of the same service counts against it
FAILURE_ATTRIBUTION = timedelta(hours=24)


@dataclass(frozen=True)
class Deployment:
    service_id: int
    at: datetime  # deployed (succeeded)
    commit_at: datetime | None = None  # change entered the pipeline
    failed: bool = False  # the change itself failed (aborted/failed release, rollback)
    ref: str = ""


@dataclass(frozen=True)
class Incident:
    service_id: int
    started_at: datetime  # fired
    resolved_at: datetime | None = None


def level(metric: str, value: float | None) -> str | None:
    if value is None:
        return None
    bounds = THRESHOLDS[metric]
    for name, bound in zip(LEVELS, bounds, strict=False):
        if (value >= bound) if metric in HIGHER_IS_BETTER else (value <= bound):
            return name
    return "low"


def deployment_frequency(deployments, days: float) -> float:
    return len([d for d in deployments if not d.failed]) / days if days > 0 else 0.0


def lead_time(deployments) -> float | None:
    """Median seconds from commit (pipeline entry) to deployed; None without data."""
    spans = [
        (d.at - d.commit_at).total_seconds() for d in deployments if d.commit_at and not d.failed
    ]
    return statistics.median(spans) if spans else None


def failed_changes(deployments, incidents, attribution=FAILURE_ATTRIBUTION) -> list:
    """Deployments that failed outright or were followed by an incident of the same service
    (within ``attribution`` and before that service's next deployment)."""
    by_service: dict = {}
    for d in sorted(deployments, key=lambda d: d.at):
        by_service.setdefault(d.service_id, []).append(d)
    failed = []
    for service_id, deps in by_service.items():
        starts = sorted(i.started_at for i in incidents if i.service_id == service_id)
        for k, d in enumerate(deps):
            if d.failed:
                failed.append(d)
                continue
            until = d.at + attribution
            if k + 1 < len(deps):
                until = min(until, deps[k + 1].at)
            if any(d.at <= s < until for s in starts):
                failed.append(d)
    return failed


def change_failure_rate(deployments, incidents) -> float | None:
    if not deployments:
        return None
    return len(failed_changes(deployments, incidents)) / len(deployments)


def time_to_restore(incidents) -> float | None:
    spans = [(i.resolved_at - i.started_at).total_seconds() for i in incidents if i.resolved_at]
    return statistics.median(spans) if spans else None


def compute(deployments, incidents, start: datetime, end: datetime) -> dict:
    """The four metrics over [start, end), each {value, unit, level}."""
    deps = [d for d in deployments if start <= d.at < end]
    incs = [i for i in incidents if start <= i.started_at < end]
    days = (end - start).total_seconds() / DAY
    values = {
        "deployment_frequency": deployment_frequency(deps, days),
        "lead_time": lead_time(deps),
        "change_failure_rate": change_failure_rate(deps, incs),
        "time_to_restore": time_to_restore(incs),
    }
    out = {
        name: {"value": value, "unit": UNITS[name], "level": level(name, value)}
        for name, value in values.items()
    }
    out["deployments"] = len(deps)
    out["incidents"] = len(incs)
    out["open_incidents"] = sum(1 for i in incs if i.resolved_at is None)
    return out


def trend(deployments, incidents, end: datetime, days: int, buckets: int = 4) -> list[dict]:
    """The metrics over ``buckets`` consecutive equal periods ending at ``end`` (oldest first)."""
    size = timedelta(days=days) / buckets
    start = end - timedelta(days=days)
    periods = []
    for k in range(buckets):
        a, b = start + k * size, start + (k + 1) * size
        periods.append({"start": a, "end": b, **compute(deployments, incidents, a, b)})
    return periods


# --- sources ----------------------------------------------------------------------------------
# Deployments come from the apps that record them (``portal.registry.deployment_source``:
# ``pipelines.dora``, ``releases.dora``), as (service_id, at, commit_at, failed, ref) tuples.
def _loader(source):
    def load(services, start, end) -> list[Deployment]:
        return [Deployment(*row) for row in source.load(services, start, end)]

    load.__name__ = source.load.__name__
    return load


class _Sources(Mapping):
    """name -> loader of every registered deployment source, highest priority first."""

    def __getitem__(self, name):
        for source in registry.deployment_sources:
            if source.name == name:
                return _loader(source)
        raise KeyError(name)

    def __iter__(self):
        return iter([source.name for source in registry.deployment_sources])

    def __len__(self):
        return len(registry.deployment_sources)


SOURCES = _Sources()


def incidents_from_alerts(services, start, end) -> list[Incident]:
    rows = Alert.objects.filter(
        service_id__in=[s.pk for s in services],
        fired_at__isnull=False,
        fired_at__gte=start,
        fired_at__lt=end,
    ).values_list("service_id", "fired_at", "resolved_at")
    return [Incident(sid, fired, resolved) for sid, fired, resolved in rows]


def _none(services, start, end) -> list[Deployment]:
    return []


def report(services, days: int = 30, now=None, source=None) -> dict:
    """``source`` None: production releases where the services have any in the window, else
    pipeline runs (installs deploying without Backline releases keep their figures)."""
    end = now or timezone.now()
    start = end - timedelta(days=days)
    services = list(services)
    if source is None:  # the first source (by priority) with deployments in the window
        deps, source = [], _none
        for source in SOURCES.values():
            deps = source(services, start, end)
            if deps:
                break
    else:
        deps = source(services, start, end)
    incs = incidents_from_alerts(services, start, end)
    return {
        "days": days,
        "start": start,
        "end": end,
        "deployment_source": getattr(source, "__name__", str(source)),
        "metrics": compute(deps, incs, start, end),
        "trend": trend(deps, incs, end, days),
    }
