"""Where a service runs: the Runtime panel and ``GET /api/v1/services/<slug>/runtime``.

For each environment the service is deployed to (it had a release, a scale action or a
schedule there) whose driver reports a runtime (kubernetes, argo-rollouts, haproxy), the
driver's view now: workloads per track, pods or servers with readiness, restarts and weights.
A driver that does not answer is shown as that environment's error, never as a page error.
"""

from infra.models import TerraformRun
from portal.errors import Invalid
from releases.drivers import DriverError, get_driver
from releases.models import Environment, Release, ScaleEvent, ScaleSchedule
from releases.scaling import capacity_target, current_replicas, limits


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


def service_runtime(service) -> dict:
    lo, hi = limits(service)
    out = {
        "service": service.slug,
        "min_replicas": lo,
        "max_replicas": hi,
        "terraform": terraform_runtime(service),
        "environments": [],
    }
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
            if not driver.scales:
                continue  # local / webhook: nothing to show
            entry["runtime"] = driver.runtime(service)
        except DriverError as exc:
            entry["error"] = str(exc)[:500]
        out["environments"].append(entry)
    return out
