"""Pull-request builds: ``pull_request`` (opened, synchronize, reopened) runs the pipeline of
each reached service on the PR's head commit, reported as a check run; a new commit cancels
the PR's older runs (``pull_request.cancel_previous`` in backline.yml, default
``GITHUB_PR_CANCEL_PREVIOUS``).

Which PRs run is decided from the spec at the head commit, read through the GitHub contents API
(``backline.yml`` and its other names), else the spec stored in the portal: ``pull_request:
false`` runs none, ``pull_request: {branches: [...]}`` only PRs into those base branches, no
``pull_request:`` key every PR. Every spec is read before any run is created: a GitHub error
(403, rate limit) refuses the delivery with its message and starts nothing.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from pipelines import services
from pipelines.github.checks import attach_check
from pipelines.models import ACTIVE_STATUSES, PipelineConfig, PipelineRun
from pipelines.spec import SPEC_FILENAMES, SpecError, parse, pull_request_matches
from portal import github
from portal.errors import Conflict, Invalid
from portal.inbound import PullRequest, Push, Refused


def _spec_text(service, pr: PullRequest) -> str:
    if github.configured() and pr.repository:
        client = github.GitHub(pr.installation, max_wait=0)  # GitHub waits 10 s for the answer
        for name in SPEC_FILENAMES:
            try:
                text, _ = client.file_text(pr.repository, name, ref=pr.head_sha)
            except github.GitHubError as exc:
                raise Refused(
                    f"Reading {name} of {pr.repository}@{pr.head_sha[:10]} from GitHub failed "
                    f"(nothing was started): {exc}"
                ) from None
            if text is not None:
                return text
    config = PipelineConfig.objects.filter(service=service).first()
    return config.spec_yaml if config else ""


def pr_filters(service, pr: PullRequest) -> dict | None:
    """The spec's ``pull_request`` filters at the head commit (None: none, or no valid spec:
    the run then fails with the spec's error, shown on its check)."""
    text = _spec_text(service, pr)
    if not text.strip():
        return None
    try:
        return parse(text).data.get("pull_request")
    except SpecError:
        return None


def _entry(run) -> dict:
    return {"id": run.pk, "kind": "pipeline", "service": run.service.slug,
            "number": run.number, "url": run.get_absolute_url(), "pull_request": True}  # fmt: skip


def cancel_older(run: PipelineRun, pr: PullRequest, filters: dict | None) -> list[int]:
    """Cancel the PR's older active runs of the same service (their checks say cancelled)."""
    if not (filters or {}).get("cancel_previous", settings.GITHUB_PR_CANCEL_PREVIOUS):
        return []
    older = PipelineRun.objects.filter(
        service_id=run.service_id,
        github_check__repository=pr.repository,
        github_check__pull_request=pr.number,
        status__in=ACTIVE_STATUSES,
    ).exclude(pk=run.pk)
    canceled = []
    for old in older.select_related("service", "service__owner"):
        try:
            services.cancel_run(old, actor=pr.actor)
        except Conflict:  # it finished meanwhile
            continue
        canceled.append(old.pk)
    return canceled


def _run_fields(pr: PullRequest) -> dict:
    """What ``trigger_run`` gets for a pull request: its head commit, by the webhook actor."""
    return dict(actor=pr.actor, ref=pr.head_ref, commit=pr.head_sha, delivery_id=pr.delivery,
                trigger=PipelineRun.Trigger.PULL_REQUEST, commit_message=pr.title,
                commit_author=pr.author)  # fmt: skip


def on_pull_request(pr: PullRequest, verified: list) -> dict:
    if pr.from_fork and not settings.GITHUB_PR_BUILD_FORKS:
        reason = (
            "pull requests from forks are not built: their code would run with the service's "
            "pipeline secrets (GITHUB_PR_BUILD_FORKS=true builds them)"
        )
        return {"runs": [], "reason": reason}
    filters = {service.pk: pr_filters(service, pr) for service in verified}
    runs, skipped, canceled = [], [], []
    for service in verified:
        if not pull_request_matches(filters[service.pk], pr.base_ref):
            skipped.append(service.slug)
            continue
        try:
            with transaction.atomic():
                run, created = services.trigger_run(service, **_run_fields(pr))
                if created:
                    attach_check(run, repository=pr.repository, head_sha=pr.head_sha,
                                 installation=pr.installation, pull_request=pr.number)  # fmt: skip
                    canceled += cancel_older(run, pr, filters[service.pk])
        except Invalid as exc:
            raise Refused(exc.text) from None
        runs.append(_entry(run))
    result: dict = {"runs": runs, "canceled": canceled}
    if skipped:
        reason = (
            f"pull requests into {pr.base_ref!r} are not built by the spec's pull_request filters"
        )
        result["skipped"] = {"services": skipped, "reason": reason}
    return result


def attach_push_check(run: PipelineRun, push: Push) -> None:
    """A push's run reports to a check run on the pushed commit too."""
    repo = push.data.get("repository") if isinstance(push.data.get("repository"), dict) else {}
    installation = (
        push.data.get("installation") if isinstance(push.data.get("installation"), dict) else {}
    )
    inst_id = installation.get("id") if isinstance(installation.get("id"), int) else 0
    attach_check(
        run, repository=str(repo.get("full_name") or ""), head_sha=push.after, installation=inst_id
    )
