"""Where a service runs: the Runtime panel and ``GET /api/v1/services/<slug>/runtime``.

For each environment the service is deployed to (it had a release, a scale action or a
schedule there) whose driver reports a runtime (kubernetes, argo-rollouts, haproxy), the
driver's view now: workloads per track, pods or servers with readiness, restarts and weights.
A driver that does not answer is shown as that environment's error, never as a page error.

The panel polls every few seconds, so it reads a **snapshot** per service and environment (a
Redis key holding the driver's answer and when it was read), never the driver itself: beat
(``refresh_watched``) refreshes the snapshots of the services someone watched in the last minute,
and a viewer who finds one older than ``RELEASES_RUNTIME_SECONDS`` refreshes it. Whoever
refreshes first takes the interval's lock (``SET NX``), so the driver is read at most once per
interval per service and environment however many people watch.
"""

import time

import redis
from django.conf import settings
from django.core.cache import cache

from infra.models import TerraformRun
from portal.errors import Invalid
from releases.drivers import DriverError, get_driver
from releases.models import Environment, Release, ScaleEvent, ScaleSchedule
from releases.scaling import capacity_target, current_replicas, limits
from squads.models import Service

WATCHED = "releases:runtime:watched"  # sorted set: service id -> when its panel last polled
WATCH_SECONDS = 60
SNAPSHOT_TTL = 24 * 3600


def environments_of(service) -> list[Environment]:
    ids = set(Release.objects.filter(service=service).values_list("environment_id", flat=True))
    ids |= set(ScaleEvent.objects.filter(service=service).values_list("environment_id", flat=True))
    ids |= set(
        ScaleSchedule.objects.filter(service=service).values_list("environment_id", flat=True)
    )
    return list(Environment.objects.filter(pk__in=ids).order_by("order", "name"))


def terraform_runtime(service) -> dict | None:
    """A service scaled through its capacity workspace: the variable, the applied output."""
    try:
        target = capacity_target(service)
    except Invalid as exc:
        return {"kind": "terraform", "location": "", "error": exc.text, "instances": []}
    if target is None:
        return None
    ws, key = target
    var = ws.variables.filter(key=key, category="terraform").first()
    output = (ws.outputs or {}).get(key) or {}
    last = TerraformRun.objects.filter(workspace=ws).order_by("-number").first()
    return {
        "kind": "terraform",
        "location": f"workspace {ws.slug}, variable {key}",
        "workspace": ws.slug,
        "workspace_url": ws.get_absolute_url(),
        "variable": var.value if var else None,
        "applied": output.get("value"),
        "last_run": {"number": last.number, "status": last.status, "url": last.get_absolute_url()}
        if last
        else None,
        "instances": [],
    }


def _base(service) -> dict:
    lo, hi = limits(service)
    return {
        "service": service.slug,
        "min_replicas": lo,
        "max_replicas": hi,
        "terraform": terraform_runtime(service),
        "environments": [],
    }


def _scaling_driver(env):
    """The environment's driver when it reports a runtime; ``None`` for local / webhook."""
    driver = get_driver(env)
    return driver if driver.scales else None


def _read(driver, service) -> dict:
    snap: dict = {"at": time.time(), "runtime": None, "error": ""}
    try:
        snap["runtime"] = driver.runtime(service)
    except DriverError as exc:
        snap["error"] = str(exc)[:500]
    return snap


def service_runtime(service) -> dict:
    """The drivers' answer now (one call per environment): for tests and one-off reads."""
    out = _base(service)
    for env in environments_of(service):
        entry = {"environment": env.name, "driver": env.driver, "runtime": None, "error": ""}
        entry["replicas"] = current_replicas(service, env)
        try:
            driver = _scaling_driver(env)
            if driver is None:
                continue  # local / webhook: nothing to show
            entry.update({k: v for k, v in _read(driver, service).items() if k != "at"})
        except DriverError as exc:
            entry["error"] = str(exc)[:500]
        out["environments"].append(entry)
    return out


def _key(service, env) -> str:
    return f"releases:runtime:{service.pk}:{env.pk}"


def refresh(service, env, driver) -> dict | None:
    """Read the driver into the snapshot unless someone did within this interval."""
    interval = max(1, int(settings.RELEASES_RUNTIME_SECONDS))
    if not cache.add(_key(service, env) + ":lock", 1, timeout=interval):
        return None
    snap = _read(driver, service)
    cache.set(_key(service, env), snap, timeout=SNAPSHOT_TTL)
    return snap


def _snapshot(service, env, driver, now: float) -> dict | None:
    snap = cache.get(_key(service, env))
    if snap is None or now - snap["at"] >= settings.RELEASES_RUNTIME_SECONDS:
        snap = refresh(service, env, driver) or snap
    return snap


def _redis():
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=3, socket_connect_timeout=2)


def watch(service) -> None:
    """Note that someone looks at this service's Runtime panel (beat refreshes it a minute)."""
    _redis().zadd(WATCHED, {str(service.pk): time.time()})


def runtime_snapshot(service) -> dict:
    """What the panel and the API show: each environment's latest snapshot and its age in
    seconds (``pending`` while the first read is under way in another request)."""
    out, now = _base(service), time.time()
    for env in environments_of(service):
        entry = {"environment": env.name, "driver": env.driver, "runtime": None, "error": ""}
        entry.update({"replicas": current_replicas(service, env), "age": None, "pending": False})
        try:
            driver = _scaling_driver(env)
        except DriverError as exc:
            entry["error"] = str(exc)[:500]
            driver = None
        else:
            if driver is None:
                continue
        snap = _snapshot(service, env, driver, now) if driver else None
        if snap is not None:
            entry.update(runtime=snap["runtime"], error=snap["error"])
            entry["age"] = max(0, int(time.time() - snap["at"]))
        elif driver is not None:
            entry["pending"] = True
        out["environments"].append(entry)
    return out


def refresh_watched() -> int:
    """Beat: refresh the snapshots of the services watched in the last minute."""
    client, now = _redis(), time.time()
    client.zremrangebyscore(WATCHED, "-inf", now - WATCH_SECONDS)
    ids = [int(i) for i in client.zrangebyscore(WATCHED, now - WATCH_SECONDS, "+inf")]
    done = 0
    for service in Service.objects.filter(pk__in=ids):
        for env in environments_of(service):
            try:
                driver = _scaling_driver(env)
            except DriverError:
                continue
            if driver is not None and refresh(service, env, driver) is not None:
                done += 1
    return done
