"""``schedules:`` in ``backline.yml``: runs started by beat on a cron expression::

    schedules:
      - {cron: "0 3 * * *", branch: main}                        # 03:00 UTC every day
      - {cron: "30 6 * * 1-5", branch: release, timezone: Europe/Berlin}

The spec's schedules are remembered on the service's pipeline config whenever the spec is read
(a run, or a save in the portal); beat (:func:`run_due`, every minute) starts a run of the
branch (trigger ``schedule``) for the latest fire time of the last :data:`CATCH_UP_SECONDS`,
once (the fire time is the run's idempotency key). A fire time missed by more than that, or
followed by a later one before beat ran (beat down), is not caught up, as cron would not.
"""

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from croniter import croniter
from django.utils import timezone

from pipelines import services
from pipelines import spec as s
from pipelines.models import PipelineConfig, PipelineRun
from portal.actors import Actor
from portal.gitsource import valid_ref

SCHEDULE_KEYS = {"cron", "branch", "timezone"}
MAX_SCHEDULES = 10
CATCH_UP_SECONDS = 600
SCHEDULER = Actor.system("pipelines.scheduler", door="beat")


def parse_schedules(node) -> list[dict]:
    if not isinstance(node, yaml.SequenceNode) or not 0 < len(node.value) <= MAX_SCHEDULES:
        raise s.SpecError(
            f"expected a list of 1 to {MAX_SCHEDULES} schedules", s._line(node), "schedules"
        )
    return [_schedule(n, f"schedules[{i}]") for i, n in enumerate(node.value)]


def _schedule(node, field: str) -> dict:
    keys = s._mapping(node, field, SCHEDULE_KEYS, required=("cron", "branch"))
    cron = s._str(keys["cron"], f"{field}.cron")
    if not croniter.is_valid(cron) or len(cron.split()) != 5:
        raise s.SpecError(
            f"{cron!r} is not a cron expression (minute hour day month weekday)",
            s._line(keys["cron"]),
            f"{field}.cron",
        )
    branch = s._str(keys["branch"], f"{field}.branch")
    if not valid_ref(branch):
        raise s.SpecError(f"{branch!r} is not a branch name", s._line(keys["branch"]), field)
    tz = s._str(keys["timezone"], f"{field}.timezone") if "timezone" in keys else "UTC"
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise s.SpecError(
            f"unknown time zone {tz!r} (an IANA name like Europe/Berlin)",
            s._line(keys["timezone"]),
            f"{field}.timezone",
        ) from None
    return {"cron": cron, "branch": branch, "timezone": tz}


def fire_times(schedule: dict, now: datetime, window: float) -> list[datetime]:
    """The schedule's fire times in (now - window, now], in its time zone."""
    local = now.astimezone(ZoneInfo(schedule["timezone"]))
    it = croniter(schedule["cron"], local)
    out = []
    while True:
        t = it.get_prev(datetime)
        if (local - t).total_seconds() >= window:
            return out
        out.append(t)


def run_due(now: datetime | None = None, window: float = CATCH_UP_SECONDS) -> list[int]:
    """Beat: start the runs that are due; returns the ids of the runs started now."""
    now = now or timezone.now()
    started = []
    configs = PipelineConfig.objects.exclude(known_schedules=None).select_related("service")
    for config in configs:
        for i, sch in enumerate(config.known_schedules or []):
            for t in fire_times(sch, now, window)[:1]:  # the latest; older ones are past
                key = f"schedule:{i}:{sch['branch']}:{t.astimezone(ZoneInfo('UTC')).isoformat()}"
                run, created = services.trigger_run(
                    config.service,
                    actor=SCHEDULER,
                    ref=sch["branch"],
                    trigger=PipelineRun.Trigger.SCHEDULE,
                    idempotency_key=key[:200],
                )
                if created:
                    started.append(run.pk)
    return started
