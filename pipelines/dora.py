"""Deployments for DORA metrics (``monitoring.dora``) from pipeline runs and from the builds of
services' Jenkins jobs (``pipelines.jenkins.sync_builds``) and GitHub Actions deploy workflows
(``pipelines.github.actions``), for installs that
deploy without Backline releases; registered with ``portal.registry.deployment_source``."""

from datetime import timedelta

from pipelines.github import actions
from pipelines.models import ActionsRun, JenkinsBuild, PipelineRun


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
    return (
        out
        + _jenkins_deployments(list(branches), start, end)
        + _actions_deployments(services, branches, start, end)
    )


def _jenkins_deployments(service_ids, start, end) -> list[tuple]:
    """Successful builds of the services' Jenkins jobs (``pipelines.jenkins.sync_builds``)."""
    rows = JenkinsBuild.objects.filter(
        service_id__in=service_ids, status="success", started_at__gte=start, started_at__lt=end
    ).values_list("service_id", "started_at", "duration", "number")
    return [
        (sid, at + timedelta(seconds=took), at, False, f"jenkins #{n}") for sid, at, took, n in rows
    ]


def _actions_deployments(services, branches, start, end) -> list[tuple]:
    """Successful runs, on the default branch, of the workflows a service names in
    ``backline.io/github-actions-deploy-workflows`` (``pipelines.github.actions``)."""
    deploy = {s.pk: actions.deploy_workflows(s) for s in services}
    rows = ActionsRun.objects.filter(
        service_id__in=[pk for pk, flows in deploy.items() if flows],
        status="completed",
        conclusion="success",
        updated_at__gte=start,
        updated_at__lt=end,
    ).values_list("service_id", "workflow_file", "head_branch", "run_started_at", "updated_at")
    return [
        (sid, finished, started or finished, False, f"github actions {flow}")
        for sid, flow, branch, started, finished in rows
        if flow in deploy[sid] and branch == (branches.get(sid) or "main")
    ]
