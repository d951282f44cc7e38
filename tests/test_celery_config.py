import pytest

from portal.celery import app


def test_every_task_has_a_soft_limit_below_its_hard_limit():
    """Celery refuses to send a task whose soft time limit exceeds its hard limit; with the
    global defaults a task that sets only ``time_limit`` would break silently in beat."""
    app.loader.import_default_modules()
    conf = app.conf
    bad = []
    for name, task in app.tasks.items():
        if name.startswith("celery."):
            continue
        soft = task.soft_time_limit or conf.task_soft_time_limit
        hard = task.time_limit or conf.task_time_limit
        if soft and hard and soft > hard:
            bad.append(f"{name}: soft {soft} > hard {hard}")
    assert not bad, bad
    assert any(n.startswith("infra.") for n in app.tasks)


def test_beat_schedule_names_registered_tasks():
    app.loader.import_default_modules()
    from portal.celery import _beat_schedule

    schedule = _beat_schedule()
    assert schedule, "beat schedule is empty"
    missing = [entry["task"] for entry in schedule.values() if entry["task"] not in app.tasks]
    assert not missing, missing


def test_tasks_enqueued_by_name_are_registered_under_that_name():
    """``portal.celery.enqueue`` sends by name (a services module does not import its tasks
    module back): every name used that way must be a registered task."""
    from infra.domain.queue import APPLY_TASK, PLAN_TASK
    from pipelines.services import EXECUTE_TASK
    from portal.outbound import DELIVER_TASK
    from releases.controller import ADVANCE_TASK

    app.loader.import_default_modules()
    names = [APPLY_TASK, PLAN_TASK, EXECUTE_TASK, DELIVER_TASK, ADVANCE_TASK]
    assert [n for n in names if n not in app.tasks] == []
    assert app.tasks[EXECUTE_TASK].acks_late and app.tasks[PLAN_TASK].time_limit == 4 * 3600


@pytest.mark.django_db
def test_enqueue_by_name_runs_the_task_here_when_eager():
    from portal.celery import enqueue
    from portal.models import AuditEvent

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        enqueue("portal.tasks.record_heartbeat", "eager by name")
    finally:
        app.conf.task_always_eager = before
    assert AuditEvent.objects.filter(action="worker.heartbeat", data__note="eager by name").exists()


def test_beat_dispatchers_go_to_the_tick_queue_every_worker_consumes():
    """The dispatchers that fan batches out are not queued behind those batches (issue 16):
    beat sends them to their own queue, and a worker started without ``-Q`` (make run,
    docker-compose, the tests' workers) consumes it along with the default queue."""
    from portal.celery import DEFAULT_QUEUE, TICK_QUEUE, _beat_schedule

    app.loader.import_default_modules()
    schedule = _beat_schedule()
    ticks = {
        e["task"] for e in schedule.values() if e.get("options", {}).get("queue") == TICK_QUEUE
    }
    assert ticks >= {
        "releases.tasks.tick_releases",
        "monitoring.tasks.evaluate_alert_rules",
        "monitoring.tasks.scrape_targets",
    }
    assert {q.name for q in app.amqp.queues.values()} == {DEFAULT_QUEUE, TICK_QUEUE}
    # the batches they enqueue by name stay on the default queue
    assert app.amqp.router.route({}, "releases.tasks.drive_releases")["queue"].name == DEFAULT_QUEUE
