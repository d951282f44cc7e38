"""Celery task of pipelines.github (imported by ``pipelines.tasks`` so the worker knows it)."""

from celery import shared_task

from pipelines.github import actions, checks
from portal import github


@shared_task(
    bind=True,
    name=checks.SYNC_TASK,
    ignore_result=True,
    acks_late=True,
    max_retries=8,
)
def sync_github_check(self, run_id):
    """Send a run's state to its GitHub check run; retried with backoff (2, 4, 8, ... s) while
    GitHub fails or answers rate-limited (after the time it asks for), or another send runs."""
    try:
        return checks.sync(run_id)
    except checks.Busy:
        raise self.retry(countdown=1, max_retries=120) from None
    except github.RateLimited as exc:
        raise self.retry(countdown=max(1.0, exc.retry_after)) from None
    except github.GitHubError as exc:
        raise self.retry(countdown=min(300, 2 ** (self.request.retries + 1))) from exc


@shared_task(ignore_result=True)
def sync_actions_runs():
    """Beat: the recent GitHub Actions runs of the services naming a repository."""
    return actions.sync_runs()
