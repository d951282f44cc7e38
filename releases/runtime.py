"""Where a service runs: the Runtime panel and ``GET /api/v1/services/<slug>/runtime``.

For each environment the service is deployed to (it had a release, a scale action or a
schedule there) whose driver reports a runtime (kubernetes, argo-rollouts, haproxy), the
driver's view now: workloads per track, pods or servers with readiness, restarts and weights.
A driver that does not answer is shown as that environment's error, never as a page error.
"""

from releases.drivers import DriverError, get_driver
from releases.models import Environment, Release, ScaleEvent, ScaleSchedule
from releases.scaling import current_replicas, limits


def environments_of(service) -> list[Environment]:
    ids = set(Release.objects.filter(service=service).values_list("environment_id", flat=True))
    ids |= set(ScaleEvent.objects.filter(service=service).values_list("environment_id", flat=True))
    ids |= set(
        ScaleSchedule.objects.filter(service=service).values_list("environment_id", flat=True)
    )
    return list(Environment.objects.filter(pk__in=ids).order_by("order", "name"))


def service_runtime(service) -> dict:
    lo, hi = limits(service)
    out = {"service": service.slug, "min_replicas": lo, "max_replicas": hi, "environments": []}
    for env in environments_of(service):
        entry = {
            "environment": env.name,
            "driver": env.driver,
            "replicas": current_replicas(service, env),
            "runtime": None,
            "error": "",
        }
        try:
            driver = get_driver(env)
            if driver.scales:
                entry["runtime"] = driver.runtime(service)
        except DriverError as exc:
            entry["error"] = str(exc)[:500]
        out["environments"].append(entry)
    return out
