"""Deployments for DORA metrics (``monitoring.dora``) from pipeline runs, for installs that
deploy without Backline releases; registered with ``portal.registry.deployment_source``."""

from pipelines.models import PipelineRun


def deployments_from_pipeline_runs(services, start, end) -> list[tuple]:
    """Successful pipeline runs on each service's default branch, as
    (service_id, deployed_at, commit_at, failed, ref)."""
    branches = {s.pk: s.default_branch for s in services}
    rows = PipelineRun.objects.filter(
        service_id__in=list(branches),
        status="succeeded",
        finished_at__gte=start,
        finished_at__lt=end,
    ).values_list("service_id", "ref", "created_at", "finished_at")
    out = []
    for service_id, ref, created, finished in rows:
        branch = branches.get(service_id) or "main"
        if ref in (branch, f"refs/heads/{branch}"):
            out.append((service_id, finished, created, False, ref))
    return out
