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
