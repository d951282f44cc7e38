"""Check runs: each GitHub-started pipeline run is mirrored as check run ``backline/<service>``.

``attach_check`` (in the webhook's transaction) records which repository, commit and pull
request a run reports to; every state change of the run (``pipelines.services._announce``)
calls ``schedule_sync``, which enqueues ``sync_github_check`` after the transaction commits.
The task walks the check through every state the run has been through that GitHub has not
seen yet, in order (created on the first send, updated after), never inside a row lock: a Redis
lock per check keeps two sends of one check apart, a send goes on while the run moves meanwhile,
and a failed send is retried by the task with backoff (the last error kept on the row).

queued → ``queued``; running → ``in_progress``; finished → ``completed`` with conclusion
success, failure (summary: the failing step), cancelled, timed_out.
"""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from pipelines.github.models import GitHubCheck
from pipelines.models import ACTIVE_STATUSES, PipelineRun, RunStatus, StepRun
from portal import github
from portal.celery import enqueue

SYNC_TASK = "pipelines.github.tasks.sync_github_check"
LOCK_SECONDS = 60
CONCLUSIONS = {
    RunStatus.SUCCEEDED: "success",
    RunStatus.FAILED: "failure",
    RunStatus.CANCELED: "cancelled",
    RunStatus.TIMED_OUT: "timed_out",
    RunStatus.LOST: "failure",
}


class Busy(Exception):
    """Another worker is sending this check; the task tries again shortly."""


def check_name(run: PipelineRun) -> str:
    return f"backline/{run.service.slug}"


def attach_check(run: PipelineRun, *, repository: str, head_sha: str, installation: int = 0,
                 pull_request: int | None = None) -> GitHubCheck | None:  # fmt: skip
    """Report ``run`` as a check run on ``repository@head_sha`` (when GitHub is configured)."""
    if not (github.configured() and repository and head_sha):
        return None
    check, _ = GitHubCheck.objects.get_or_create(
        run=run,
        defaults={
            "repository": repository,
            "head_sha": head_sha,
            "installation_id": installation or 0,
            "pull_request": pull_request,
            "name": check_name(run),
        },
    )
    schedule_sync(run.pk)
    return check


def schedule_sync(run_id: int) -> None:
    """After commit, send the run's state to its check run (no-op for runs without one)."""
    if GitHubCheck.objects.filter(run_id=run_id).exists():
        transaction.on_commit(lambda: enqueue(SYNC_TASK, run_id))


def _summary(run: PipelineRun) -> tuple[str, str]:
    failing = (
        StepRun.objects.filter(
            run=run, status__in=(RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.LOST)
        )
        .order_by("index")
        .first()
    )
    if failing is not None:
        code = f" (exit code {failing.exit_code})" if failing.exit_code is not None else ""
        title = f"Step {failing.stage}/{failing.name} {failing.status}{code}"
        return title, f"**{title}**\n\n{run.error or failing.error}".strip()
    title = f"Run #{run.number} {run.status}"
    return title, (run.error or title)[:60000]


def stages_of(run: PipelineRun) -> list[str]:
    """The check states the run has been through, in order: a check walks every one of them
    (queued, in_progress when it started, completed when it is over), so GitHub shows each."""
    stages = ["queued"]
    if run.started_at or run.status == RunStatus.RUNNING:
        stages.append("in_progress")
    if run.status not in ACTIVE_STATUSES:
        stages.append("completed")
    return stages


def body_for(run: PipelineRun, stage: str) -> dict:
    """The check run fields for ``stage`` of the run."""
    body: dict = {"details_url": settings.BASE_URL.rstrip("/") + run.get_absolute_url(),
                  "external_id": str(run.pk), "status": stage}  # fmt: skip
    if stage == "in_progress":
        body["started_at"] = (run.started_at or timezone.now()).strftime("%Y-%m-%dT%H:%M:%SZ")
    elif stage == "completed":
        title, summary = _summary(run)
        body.update(
            conclusion=CONCLUSIONS.get(RunStatus(run.status), "failure"),
            completed_at=(run.finished_at or timezone.now()).strftime("%Y-%m-%dT%H:%M:%SZ"),
            output={"title": title, "summary": summary},
        )
    return body


def sync(run_id: int) -> str:
    """Send GitHub the states of the run it has not seen yet, in order; returns the last one
    GitHub has. Raises Busy or github.GitHubError (the task retries from where it stopped)."""
    lock = f"github:check:{run_id}"
    if not cache.add(lock, 1, LOCK_SECONDS):
        raise Busy(run_id)
    try:
        while True:  # the run may move while we send: go on until GitHub has its state
            check = GitHubCheck.objects.select_related("run", "run__service").get(run_id=run_id)
            stages = stages_of(check.run)
            todo = stages[stages.index(check.sent) + 1 :] if check.sent in stages else stages
            if not todo:
                return check.sent
            _send(check, todo[0], body_for(check.run, todo[0]))
    finally:
        cache.delete(lock)


def _send(check: GitHubCheck, stage: str, body: dict) -> None:
    client = github.GitHub(check.installation_id)
    GitHubCheck.objects.filter(pk=check.pk).update(attempts=check.attempts + 1)
    try:
        if check.check_id is None:
            created = client.create_check_run(
                check.repository, {"name": check.name, "head_sha": check.head_sha, **body}
            )
            check.check_id = int(created["id"])
        else:
            client.update_check_run(check.repository, check.check_id, body)
    except github.GitHubError as exc:
        GitHubCheck.objects.filter(pk=check.pk).update(error=str(exc)[:2000])
        raise
    GitHubCheck.objects.filter(pk=check.pk).update(check_id=check.check_id, sent=stage, error="")
