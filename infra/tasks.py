"""Celery tasks of the infra app. Tasks take ids; claiming is a conditional UPDATE, so a task
delivered twice (acks_late, worker lost) runs at most once."""

from celery import shared_task

TIME_LIMIT = 4 * 3600


@shared_task(acks_late=True, time_limit=TIME_LIMIT, soft_time_limit=TIME_LIMIT - 60)
def plan_run(run_id: int) -> str:
    from infra.runner import execute_plan

    return execute_plan(run_id)


@shared_task(acks_late=True, time_limit=TIME_LIMIT, soft_time_limit=TIME_LIMIT - 60)
def apply_run(run_id: int) -> str:
    from infra.runner import execute_apply

    return execute_apply(run_id)


@shared_task(acks_late=True, soft_time_limit=100, time_limit=120)
def reap_lost_runs() -> int:
    from infra.services import reap_lost_runs as reap

    return reap()


@shared_task(acks_late=True, soft_time_limit=270, time_limit=300)
def schedule_drift_checks() -> list:
    from infra.services import schedule_drift_checks as schedule

    return schedule()
