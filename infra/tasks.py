"""Celery tasks of the infra app. Tasks take ids; claiming is a conditional UPDATE, so a task
delivered twice (acks_late, worker lost) runs at most once."""

from celery import shared_task

from infra import services
from infra.domain.queue import APPLY_TASK, PLAN_TASK
from infra.runner import execute_apply, execute_plan

TIME_LIMIT = 4 * 3600


@shared_task(name=PLAN_TASK, acks_late=True, time_limit=TIME_LIMIT, soft_time_limit=TIME_LIMIT - 60)
def plan_run(run_id: int) -> str:
    return execute_plan(run_id)


@shared_task(
    name=APPLY_TASK, acks_late=True, time_limit=TIME_LIMIT, soft_time_limit=TIME_LIMIT - 60
)
def apply_run(run_id: int) -> str:
    return execute_apply(run_id)


@shared_task(acks_late=True, soft_time_limit=100, time_limit=120)
def reap_lost_runs() -> int:
    return services.reap_lost_runs()


@shared_task(acks_late=True, soft_time_limit=270, time_limit=300)
def schedule_drift_checks() -> list:
    return services.schedule_drift_checks()
