"""Celery app: `celery -A portal worker` / `celery -A portal beat`.

Each app may define ``BEAT_SCHEDULE`` in ``<app>/schedule.py``; they are merged here.
"""

import importlib
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

SCHEDULE_MODULES = (
    "portal.schedule",
    "squads.schedule",
    "pipelines.schedule",
    "infra.schedule",
    "monitoring.schedule",
)


def _beat_schedule():
    schedule: dict[str, dict] = {}
    for name in SCHEDULE_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        schedule.update(getattr(module, "BEAT_SCHEDULE", {}))
    return schedule


@app.on_after_configure.connect
def _setup_beat(sender, **kwargs):
    sender.conf.beat_schedule = _beat_schedule()


@app.on_after_finalize.connect
def _ensure_embedded_redis(sender, **kwargs):
    from django.conf import settings

    if getattr(settings, "USING_EMBEDDED_REDIS", False):
        from portal.embedded_redis import ensure_running

        ensure_running()
