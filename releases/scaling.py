"""Scaling services: by hand or API (``scale_service``), on peak-hour schedules (beat).

A service scales in an environment through that environment's deploy driver (Kubernetes
Deployment or Rollout ``scale`` subresource, HAProxy servers enabled / in maintenance) or, when
it names a capacity variable (annotation ``backline.io/capacity-variable: <workspace>/<key>``),
by setting that Terraform variable and planning the workspace (applied per the workspace's
auto-apply and approval rules). Limits come from the annotations ``backline.io/min-replicas``
and ``backline.io/max-replicas`` (defaults ``SCALING_MIN_REPLICAS`` / ``SCALING_MAX_REPLICAS``).
Permissions are those of releases: squad members and org admins; tokens need their own scope
``scaling:write`` (a deploy bot with ``releases:promote`` does not scale). Every action is audited and emits ``service.scaled``.

A schedule is a window that opens by a cron expression in a timezone and lasts
``duration_minutes``, at ``replicas``; outside every window the service runs
``base_replicas``. Windows of one service and environment may not overlap.
"""

from __future__ import annotations

import logging
import zoneinfo
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import croniter
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from infra.domain.queue import queue_run
from infra.domain.variables import set_variable
from infra.models import Workspace
from portal import audit, events
from portal.actors import Actor
from portal.errors import DomainError, Forbidden, Invalid, Unavailable
from releases.drivers import DriverError, get_driver
from releases.models import Environment, ScaleEvent, ScaleSchedule, ScaleStatus

log = logging.getLogger(__name__)

SCOPES = ("scaling:write",)
CAPACITY = "backline.io/capacity-variable"
MIN_REPLICAS = "backline.io/min-replicas"
MAX_REPLICAS = "backline.io/max-replicas"
MAX_WINDOW_MINUTES = 7 * 24 * 60
OVERLAP_HORIZON = timedelta(days=366)
OVERLAP_OPENINGS = 3000


def require_scaling(actor: Actor, service, what: str = "scaling this service") -> None:
    if any(actor.can(scope, service.owner_id) for scope in SCOPES):
        return
    if actor.token is not None:
        raise Forbidden(f"The token lacks the scope 'scaling:write' needed for {what}.")
    raise Forbidden(f"Only members of the owning squad and org admins may do {what}.")


def whole_number(value: Any, field: str) -> int:
    if isinstance(value, bool):
        raise Invalid(errors={field: "must be a whole number"})
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int):
        raise Invalid(errors={field: f"must be a whole number, not {value!r}"[:200]})
    if value < 0:
        raise Invalid(errors={field: "must be 0 or more"})
    return value


def limits(service) -> tuple[int, int]:
    notes = service.annotations or {}
    out = []
    for key, default in (
        (MIN_REPLICAS, settings.SCALING_MIN_REPLICAS),
        (MAX_REPLICAS, settings.SCALING_MAX_REPLICAS),
    ):
        raw = notes.get(key, default)
        try:
            out.append(whole_number(raw, key))
        except Invalid:
            raise Invalid(
                errors={
                    "replicas": f"the service's annotation {key} ({raw!r}) is not a whole number"
                }
            ) from None
    return out[0], out[1]


def environment_of(name: Any) -> Environment:
    env = Environment.objects.filter(name=str(name or "")).first()
    if env is None:
        known = ", ".join(Environment.objects.values_list("name", flat=True))
        raise Invalid(errors={"environment": f"unknown environment {name!r} (known: {known})"})
    return env


def capacity_target(service) -> tuple[Workspace, str] | None:
    raw = (service.annotations or {}).get(CAPACITY)
    if not raw:
        return None
    ws_slug, _, key = str(raw).partition("/")
    ws = Workspace.objects.select_related("owner").filter(slug=ws_slug).first()
    if ws is None or not key:
        raise Invalid(errors={"environment": f"{CAPACITY} {raw!r} names no workspace/variable"})
    if ws.owner_id != service.owner_id:
        raise Invalid(
            errors={"environment": f"{CAPACITY}: workspace {ws.slug} belongs to another squad"}
        )
    return ws, key


def check_target(service, env: Environment, replicas: int) -> str:
    """How ``service`` scales in ``env`` ("terraform" or the driver's name); 400 when it cannot
    run ``replicas`` there."""
    lo, hi = limits(service)
    if not lo <= replicas <= hi:
        raise Invalid(
            errors={
                "replicas": f"{replicas} is outside {service.slug}'s limits {lo}–{hi} ({MIN_REPLICAS} / {MAX_REPLICAS})"
            }
        )
    if capacity_target(service) is not None:
        return "terraform"
    try:
        driver = get_driver(env)
    except DriverError as exc:
        raise Invalid(errors={"environment": str(exc)}) from None
    if not driver.scales:
        raise Invalid(
            errors={
                "environment": f"environment {env.name} uses the {driver.name} driver, which cannot scale; "
                f"name a driver that can (kubernetes, argo-rollouts, haproxy) or a {CAPACITY}"
            }
        )
    try:
        most = driver.max_replicas(service)
    except DriverError as exc:
        raise Invalid(errors={"environment": str(exc)}) from None
    if most is not None and replicas > most:
        raise Invalid(
            errors={"replicas": f"{env.name} has room for {most} instances of {service.slug}"}
        )
    return driver.name


def current_replicas(service, env) -> int | None:
    last = (
        ScaleEvent.objects.filter(service=service, environment=env)
        .exclude(status=ScaleStatus.FAILED)
        .values_list("replicas", flat=True)
        .first()
    )
    return last


def scale_service(
    service, *, actor: Actor, environment: Any, replicas: Any, reason: str = "", schedule=None
) -> ScaleEvent:
    """Run ``replicas`` instances of ``service`` in ``environment`` (an Environment or name)."""
    require_scaling(actor, service)
    env = environment if isinstance(environment, Environment) else environment_of(environment)
    n = whole_number(replicas, "replicas")
    via = check_target(service, env, n)
    previous = current_replicas(service, env)
    run_id = None
    if via == "terraform":
        ws, key = capacity_target(service) or (None, "")
        # the scale was authorised above (scaling on the service's squad, whose workspace it is):
        # the workspace changes only this variable, to a number within the limits, and applies
        # by its own rules (auto-apply or a person's approval); audited as the scaler
        on_behalf = Actor.system(f"{actor.label} (scaling)", door=actor.door)
        with transaction.atomic():
            set_variable(ws, actor=on_behalf, key=key, value=n, description="replicas (scaling)")
            message = f"scale {service.slug} in {env.name} to {n}"
            run = queue_run(ws, actor=on_behalf, message=message)
        run_id, status = run.pk, ScaleStatus.PLANNED
    else:
        try:
            get_driver(env).scale(service, n)  # no row lock is held here
        except DriverError as exc:
            raise Unavailable(f"{env.name}: {exc}") from None
        status = ScaleStatus.APPLIED
    with transaction.atomic():
        event = ScaleEvent.objects.create(
            service=service,
            environment=env,
            replicas=n,
            previous=previous,
            via=via,
            status=status,
            reason=reason[:300],
            schedule=schedule,
            terraform_run_id=run_id,
            actor=actor.label[:200],
            door=actor.door,
        )
        data = {
            "service": service.slug,
            "environment": env.name,
            "replicas": n,
            "previous": previous,
            "via": via,
        }
        audit.record(
            actor, "service.scale", service, squad=service.owner, data={**data, "reason": reason}
        )
        events.emit(
            "service.scaled", service.owner, {**data, "status": status, "terraform_run": run_id}
        )
    return event


# --- schedules ------------------------------------------------------------------------------------
def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(str(name))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise Invalid(
            errors={"timezone": f"unknown timezone {name!r} (an IANA name like Europe/Stockholm)"}
        ) from None


def windows(
    cron: str, minutes: int, tz: str, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The (open, close) windows overlapping [start, end), in UTC."""
    zone = _zone(tz)
    it = croniter(cron, (start - timedelta(minutes=minutes)).astimezone(zone))
    out = []
    while True:
        opened = it.get_next(datetime)
        if opened >= end:
            return out
        closed = opened + timedelta(minutes=minutes)
        if closed > start:
            out.append((opened.astimezone(UTC), closed.astimezone(UTC)))
        if len(out) > 5000:
            return out


def _openings(cron: str, tz: str, start: datetime, end: datetime, most: int) -> list[datetime]:
    it = croniter(cron, start.astimezone(_zone(tz)))
    out: list[datetime] = []
    while len(out) < most and (opened := it.get_next(datetime)) < end:
        out.append(opened)
    return out


def first_overlap(a: tuple, b: tuple, now: datetime) -> datetime | None:
    """When a window of schedule ``a`` first overlaps one of ``b`` (each ``(cron, minutes,
    tz)``) within ``OVERLAP_HORIZON`` from ``now`` (a year: monthly windows, and timezones whose
    offsets part at a daylight-saving change), else ``None``. Windows [x, x+m) and [y, y+n)
    overlap when ``x - n < y < x + m``: for each opening ``x`` of the sparser schedule, one
    step of the other's cron from ``x - n`` finds the only candidate ``y``."""
    end = now + OVERLAP_HORIZON
    # the sparser one drives; a pair of dense ones is checked over its first OVERLAP_OPENINGS
    first = [
        _openings(c, z, now - timedelta(minutes=m), end, OVERLAP_OPENINGS) for c, m, z in (a, b)
    ]
    (x_cron, x_min, x_tz), (y_cron, y_min, y_tz) = (
        (a, b) if len(first[0]) <= len(first[1]) else (b, a)
    )
    y_zone = _zone(y_tz)
    for x in min(first, key=len):
        it = croniter(y_cron, (x - timedelta(minutes=y_min)).astimezone(y_zone))
        if it.get_next(datetime) < x + timedelta(minutes=x_min):
            return x.astimezone(UTC)
    return None


def validate_schedule(service, env, data: dict, *, exclude=None) -> dict:
    cron = str(data.get("cron") or "").strip()
    if not cron or not croniter.is_valid(cron) or len(cron.split()) != 5:
        raise Invalid(
            errors={"cron": f"{cron!r} is not a five-field cron expression (e.g. '0 17 * * 1-5')"}
        )
    minutes = whole_number(data.get("duration_minutes"), "duration_minutes")
    if not 1 <= minutes <= MAX_WINDOW_MINUTES:
        raise Invalid(errors={"duration_minutes": f"must be between 1 and {MAX_WINDOW_MINUTES}"})
    tz = str(data.get("timezone") or "UTC")
    _zone(tz)
    replicas = whole_number(data.get("replicas"), "replicas")
    base = whole_number(data.get("base_replicas"), "base_replicas")
    for value in (replicas, base):
        check_target(service, env, value)
    others = ScaleSchedule.objects.filter(service=service, environment=env, enabled=True)
    if exclude is not None:
        others = others.exclude(pk=exclude.pk)
    now = timezone.now()
    for other in others:
        if other.base_replicas != base:
            raise Invalid(
                errors={
                    "base_replicas": f"must be {other.base_replicas}, as in schedule {other.name or other.pk}: one base per service and environment"
                }
            )
        clash = first_overlap(
            (cron, minutes, tz), (other.cron, other.duration_minutes, other.tz), now
        )
        if clash is not None:
            raise Invalid(
                errors={
                    "cron": f"overlaps schedule {other.name or other.pk!r} (first at {clash:%Y-%m-%d %H:%M} UTC)"
                }
            )
    return {
        "cron": cron,
        "duration_minutes": minutes,
        "tz": tz,
        "replicas": replicas,
        "base_replicas": base,
    }


def create_schedule(service, *, actor: Actor, environment: Any, **data) -> ScaleSchedule:
    require_scaling(actor, service, "changing this service's scaling schedules")
    env = environment_of(environment)
    clean = validate_schedule(service, env, data)
    with transaction.atomic():
        schedule = ScaleSchedule.objects.create(
            service=service,
            environment=env,
            name=str(data.get("name") or "")[:100],
            created_by=actor.label[:200],
            **clean,
        )
        audit.record(
            actor,
            "service.schedule.create",
            schedule,
            squad=service.owner,
            data={**clean, "environment": env.name},
        )
    return schedule


def delete_schedule(schedule: ScaleSchedule, *, actor: Actor) -> None:
    require_scaling(actor, schedule.service, "changing this service's scaling schedules")
    with transaction.atomic():
        audit.record(actor, "service.schedule.delete", schedule, squad=schedule.service.owner)
        schedule.delete()


def wanted(schedules: list[ScaleSchedule], now: datetime) -> tuple[int, ScaleSchedule | None, str]:
    """(replicas, schedule, why) for one service and environment at ``now``."""
    for s in schedules:
        if windows(s.cron, s.duration_minutes, s.tz, now, now + timedelta(seconds=1)):
            return s.replicas, s, f"schedule {s.name or s.pk}: window open"
    first = schedules[0]
    return first.base_replicas, first, "outside every scheduled window"


def apply_schedules(now: datetime | None = None) -> int:
    """Beat: scale every scheduled service whose wanted replicas differ from the last set."""
    now = now or timezone.now()
    groups: dict[tuple[int, int], list[ScaleSchedule]] = {}
    for s in ScaleSchedule.objects.filter(enabled=True).select_related(
        "service__owner", "environment"
    ):
        groups.setdefault((s.service_id, s.environment_id), []).append(s)
    changed = 0
    actor = Actor.system("schedule", door="beat")
    for items in groups.values():
        n, schedule, why = wanted(items, now)
        service, env = items[0].service, items[0].environment
        if current_replicas(service, env) == n:
            continue
        try:
            scale_service(
                service, actor=actor, environment=env, replicas=n, reason=why, schedule=schedule
            )
            changed += 1
        except DomainError as exc:
            log.warning("schedule of %s in %s: %s", service.slug, env.name, exc)
            last = ScaleEvent.objects.filter(service=service, environment=env).first()
            if last and (last.status, last.replicas, last.error) == ("failed", n, str(exc)[:2000]):
                continue  # the same failure again: one line in the timeline is enough
            ScaleEvent.objects.create(
                service=service,
                environment=env,
                replicas=n,
                via="schedule",
                status=ScaleStatus.FAILED,
                error=str(exc)[:2000],
                reason=why,
                schedule=schedule,
                actor=actor.label,
                door=actor.door,
            )
    return changed


def scale_marks(service, t0: float, t1: float) -> list[tuple[float, str]]:
    """Scale actions of ``service`` in [t0, t1], for the request-rate chart."""
    start = datetime.fromtimestamp(t0, tz=UTC)
    end = datetime.fromtimestamp(t1, tz=UTC)
    rows = ScaleEvent.objects.filter(service=service, at__gte=start, at__lte=end)
    rows = rows.exclude(status=ScaleStatus.FAILED).select_related("environment")[:50]
    return [(e.at.timestamp(), f"×{e.replicas} {e.environment.name}") for e in rows]
