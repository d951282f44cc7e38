"""Deployments for DORA metrics (``monitoring.dora``) from finished production releases;
registered with ``portal.registry.deployment_source`` ahead of pipeline runs."""

from releases.models import Release


def deployments_from_releases(services, start, end) -> list[tuple]:
    """Finished production releases: succeeded = a deployment, failed / aborted = a failed
    change. Lead time from the pipeline run that started the release (else the release's
    creation) to the release's end. As (service_id, deployed_at, commit_at, failed, ref)."""
    rows = (
        Release.objects.filter(
            service_id__in=[s.pk for s in services],
            environment__production=True,
            status__in=["succeeded", "failed", "aborted"],
            finished_at__gte=start,
            finished_at__lt=end,
        )
        .select_related("pipeline_run")
        .only("service_id", "status", "created_at", "finished_at", "version", "pipeline_run")
    )
    return [
        (
            r.service_id,
            r.finished_at,
            r.pipeline_run.created_at if r.pipeline_run_id else r.created_at,
            r.status != "succeeded",
            r.version,
        )
        for r in rows
    ]
