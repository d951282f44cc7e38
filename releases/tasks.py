"""Celery tasks of the release controller (registered through ``pipelines.tasks``)."""

from celery import shared_task

from releases import controller, runtime, sync

# a release task whose worker dies is delivered again (driving is idempotent under the row lock)
REDELIVERED = {"acks_late": True, "ignore_result": True, "soft_time_limit": 120, "time_limit": 150}


@shared_task(name=controller.ADVANCE_TASK, **REDELIVERED)
def advance_release(release_id):
    """Drive one release now, then hand its wanted driver call to the driver (after an action,
    a driver confirmation or a beat tick)."""
    status = controller.advance(release_id)
    sync.sync(release_id)
    return status


@shared_task(ignore_result=True, soft_time_limit=120, time_limit=150)
def tick_releases():
    """Beat: claim the releases that are due (from the database state alone) in batches, one
    ``drive_releases`` task per batch."""
    return controller.dispatch()


@shared_task(name=controller.DRIVE_TASK, **REDELIVERED)
def drive_releases(ids):
    """Drive one claimed batch of releases."""
    return controller.drive_claimed(ids)


@shared_task(ignore_result=True, soft_time_limit=120, time_limit=150)
def observe_releases():
    """Beat: mirror what the deployers report onto active releases; pause a stuck one."""
    from releases import observe

    return observe.observe_all()


@shared_task(ignore_result=True, soft_time_limit=120, time_limit=150)
def apply_scaling_schedules():
    """Beat: open and close the services' peak-hour windows (each change a scale action)."""
    from releases import scaling

    return scaling.apply_schedules()


@shared_task(ignore_result=True, soft_time_limit=60, time_limit=90)
def refresh_runtime_snapshots():
    """Beat: read the deployers' runtime for the services whose Runtime panel is open."""
    return runtime.refresh_watched()
