"""Celery app: `celery -A portal worker` / `celery -A portal beat`.

Each app registers its ``BEAT_SCHEDULE`` (``<app>/schedule.py``) into ``portal.registry`` from
its ``AppConfig.ready()``; beat reads the merged schedule once Django is set up.
"""

import os

from celery import Celery, signals
from django.apps import apps
from django.conf import settings

from portal.embedded_redis import ensure_running
from portal.registry import registry

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


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
