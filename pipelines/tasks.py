from celery import shared_task
from django.db import InterfaceError, OperationalError

from pipelines import approvals, artifacts, dag, jenkins, jobexec, runner, schedules, services

# steps carry their own timeouts (at most 24 h each, see pipelines.spec); the task limit is a backstop
EXECUTOR_TASK: dict = {
    "acks_late": True,
    "ignore_result": True,
    # the database was unreachable before the run was claimed: try again (a claimed run is
    # never run twice: the claim is a conditional UPDATE)
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "max_retries": 8,
    "soft_time_limit": 24 * 3600 + 1800,
    "time_limit": 24 * 3600 + 1900,
}


@shared_task(name=services.EXECUTE_TASK, **EXECUTOR_TASK)
def execute_run(run_id):
    """Run one pipeline run (claimed with a conditional UPDATE; a duplicate delivery is a no-op)."""
    runner.execute(run_id)


@shared_task(name=dag.JOB_TASK, **EXECUTOR_TASK)
def execute_job(job_id):
    """Run one job of a ``jobs:`` pipeline (pipelines.jobexec); claimed like a run."""
    jobexec.execute_job(job_id)


@shared_task(name=approvals.RESUME_TASK, **EXECUTOR_TASK)
def resume_after_approval(approval_id):
    """Go on with a run (or job) parked at an ``approval:`` step once it was decided."""
    jobexec.resume_after_approval(approval_id)


@shared_task(ignore_result=True)
def expire_approvals():
    """Beat: approval steps past their deadline time out; lost resumes are sent again."""
    return approvals.expire_due()


@shared_task(ignore_result=True)
def reap_lost_runs(stale_seconds=None):
    """Beat: mark runs whose worker stopped sending heartbeats as lost; re-send queued runs
    whose broker message may have been lost."""
    reaped = services.reap_lost(stale_seconds)
    services.requeue_stale()
    dag.reap_lost_jobs(stale_seconds)
    dag.requeue_stale_jobs()
    return reaped


@shared_task(ignore_result=True)
def expire_artifacts():
    """Beat: remove the artifacts past their ``expire_in``."""
    return artifacts.expire()


@shared_task(ignore_result=True)
def run_schedules():
    """Beat, every minute: start the runs that the services' ``schedules:`` make due."""
    return schedules.run_due()


@shared_task(ignore_result=True)
def sync_jenkins_builds():
    """Beat: the recent builds of the services' Jenkins jobs, for the scorecard and DORA."""
    return jenkins.sync_builds()


from pipelines.github.tasks import sync_actions_runs, sync_github_check  # noqa: E402,F401
