"""Celery app: `celery -A portal worker` / `celery -A portal beat`.

Each app registers its ``BEAT_SCHEDULE`` (``<app>/schedule.py``) into ``portal.registry`` from
its ``AppConfig.ready()``; beat reads the merged schedule once Django is set up.
"""

import os

from celery import Celery, signals
from django.apps import apps
from django.conf import settings
from kombu import Queue

from portal.embedded_redis import ensure_running
from portal.registry import registry

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Two queues, both consumed by every worker that names none (``celery -A portal worker``: make
# run, docker-compose, the tests' and benchmarks' workers): the default one, and ``ticks`` for
# the beat dispatchers that claim due work and fan it out as batch tasks on the default queue
# (``TICK_OPTIONS`` in an app's ``schedule.py``). A worker takes from its queues in turn, so a
# backlog of batches never delays the next tick by more than the batch that frees a process.
DEFAULT_QUEUE = "celery"
TICK_QUEUE = "ticks"
app.conf.task_default_queue = DEFAULT_QUEUE
app.conf.task_queues = (Queue(DEFAULT_QUEUE), Queue(TICK_QUEUE))


def _beat_schedule():
    return dict(registry.beat)


@signals.import_modules.connect
def _setup_beat(sender, **kwargs):
    """Worker and beat import their task modules once the Django fixup has set Django up (it
    listens to the same signal, connected first): the registry is filled by then."""
    if apps.ready:
        sender.conf.beat_schedule = _beat_schedule()


@app.on_after_finalize.connect
def _ensure_embedded_redis(sender, **kwargs):
    if getattr(settings, "USING_EMBEDDED_REDIS", False):
        ensure_running()


def tick_entry(task: str, seconds: float) -> dict:
    """A beat entry for a dispatcher: sent to the tick queue, expiring when it could not run
    within two of its periods."""
    return {
        "task": task,
        "schedule": seconds,
        "options": {"expires": seconds * 2, "queue": TICK_QUEUE},
    }


def enqueue(name: str, *args, countdown: float | None = None) -> None:
    """Enqueue the task registered as ``name`` (``"<app>.tasks.<function>"``), as its
    ``apply_async`` would. By name, so a ``services.py`` that its ``tasks.py`` imports does not
    have to import the task back. With ``CELERY_TASK_ALWAYS_EAGER`` the task runs here, as
    ``.delay()`` would."""
    if app.conf.task_always_eager:
        app.loader.import_default_modules()
        app.tasks[name].apply_async(args=args, countdown=countdown)
        return
    app.send_task(name, args=args, countdown=countdown)
