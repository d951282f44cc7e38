"""The release controller: drives releases from their database rows alone.

``drive(release)`` works on a row the caller has locked (``select_for_update``) inside a
transaction, and goes as far as it can without waiting and without the network: walks
``set_weight`` steps, stops at a pause, starts / measures / judges an analysis, finishes the
release and owes the driver a promote or a rollback. A weight change or that final promote /
rollback is *recorded* as the wanted driver call (``Release.driver_call``); the release waits
("applying") until the driver confirms it. It saves the row (only the fields it drives) and
sets ``next_tick_at`` for when it wants to be called again.

After commit, ``sync(release_id)`` (task ``advance_release``) hands the wanted call to the
driver, outside any row lock, and ``confirm`` records the outcome in a short transaction and
drives on. A call has an id: the same wanted state handed over twice is one change (the
webhook driver's outbound delivery is keyed by it). Celery beat calls ``dispatch`` every few
seconds: it claims the due releases in batches (an indexed ``next_tick_at`` query, ``FOR UPDATE
SKIP LOCKED``) and hands each batch to a worker, so the work of a tick is what is due, shared by
every worker process; a call not confirmed after ``RELEASES_DRIVER_CONFIRM_SECONDS`` is handed over again.
A worker killed in the middle leaves the row as last committed; measurements are unique per
index, so nothing is counted twice and nothing is lost.
"""

import logging
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from portal import claims, events, metrics
from portal.celery import enqueue
from releases import analysis, reads, strategy
from releases.models import (
    ACTIVE_RELEASE,
    FINAL_RELEASE,
    AnalysisRun,
    AnalysisStatus,
    AnalysisTemplate,
    Measurement,
    Release,
    ReleaseEvent,
    ReleaseStatus,
)

log = logging.getLogger(__name__)

MAX_STEPS_PER_TICK = 200
ADVANCE_TASK = "releases.tasks.advance_release"  # by name: releases.tasks imports this module
DRIVE_TASK = "releases.tasks.drive_releases"
CLAIM_BATCH = 100  # releases per claimed batch (one worker task)
MAX_CLAIMED_PER_TICK = 20_000
DRIVE_HERE = 10  # a tick with at most this many due releases drives them itself
EVENT_FOR = {
    ReleaseStatus.PAUSED: "release.paused",
    ReleaseStatus.SUCCEEDED: "release.succeeded",
    ReleaseStatus.ABORTED: "release.aborted",
    ReleaseStatus.FAILED: "release.failed",
}
CONTROLLER = "controller"
# the fields drive() / confirm() change: saved with update_fields (the catalog cache watches
# only service, environment and strategy of a release)
DRIVEN_FIELDS = [
    "status",
    "step_index",
    "weight",
    "desired_weight",
    "generation",
    "pause_until",
    "message",
    "driver_action",
    "driver_call",
    "driver_error",
    "driver_failures",
    "next_tick_at",
    "started_at",
    "finished_at",
    "updated_at",
]


MEASURED_FIELDS = ["status", "next_measure_at", "finished_at", "message"]  # of a run


def state(r) -> dict:
    """The current state, as answered with a 409."""
    step = r.current_step
    return {
        "id": r.pk,
        "status": r.status,
        "step_index": r.step_index,
        "step": strategy.describe(step) if step else None,
        "steps": len(r.strategy or []),
        "weight": r.weight,
        "desired_weight": r.desired_weight,
        "applying": r.applying,
        "message": r.message,
    }


def release_facts(r) -> dict:
    """What the audit trail and the outbound events say of a release."""
    return {
        "service": r.service.slug,
        "version": r.version,
        "environment": r.environment.name,
        "status": r.status,
        "step_index": r.step_index,
        "weight": r.weight,
    }


def event_data(r) -> dict:
    return {"release": r.pk, **release_facts(r), "message": r.message}


def note(r, kind, message="", *, actor=CONTROLLER, door="beat", frm="", to=""):
    return ReleaseEvent.objects.create(
        release=r,
        kind=kind,
        from_status=frm,
        to_status=to,
        step_index=r.step_index,
        weight=r.weight,
        message=message[:2000],
        actor=actor[:200],
        door=door[:20],
    )


def transition(r, to, message="", *, actor=CONTROLLER, door="beat", event_type=None):
    """Change status (the caller checked it is legal), count it, log it, emit the event."""
    frm = r.status
    r.status = to
    if message:
        r.message = message
    now = timezone.now()
    if to == ReleaseStatus.PROGRESSING and r.started_at is None:
        r.started_at = now
    if to in FINAL_RELEASE:
        r.finished_at = now
    elif r.finished_at is not None:
        r.finished_at = None
    metrics.RELEASE_TRANSITIONS.labels(to=to).inc()
    note(r, "status", message, actor=actor, door=door, frm=frm, to=to)
    event_type = event_type or EVENT_FOR.get(to)
    if event_type:
        events.emit(event_type, r.service.owner, event_data(r))


def _driver_failed(r, what, exc, now):
    r.driver_failures += 1
    r.driver_error = f"{what}: {exc}"[:2000]
    r.next_tick_at = now + timedelta(seconds=settings.RELEASES_DRIVER_RETRY_SECONDS)
    if r.driver_failures == 1 or r.driver_failures % 10 == 0:
        # the terminal, like the release's events, hears of a retried failure when it starts
        # and every tenth time, not at every retry (the demo's first seconds: fleet not up)
        note(r, "driver", r.driver_error)
        log.warning("release %s: %s", r.pk, r.driver_error)


def _driver_ok(r):
    if r.driver_error:
        r.driver_error = ""
    r.driver_failures = 0


def drive(r, *, actor=CONTROLLER, door="beat") -> Release:
    """Advance a locked release as far as it goes now; saves the row."""
    now = timezone.now()
    r.next_tick_at = None
    for _ in range(MAX_STEPS_PER_TICK):
        if not _advance_once(r, now, actor, door):
            break
    _want(r, now)
    reads.save(r, DRIVEN_FIELDS)  # in a claimed batch: with the batch's other rows
    return r


def _advance_once(r, now, actor, door) -> bool:
    """One move of the release; False when it has to wait (or is final)."""
    if r.status in FINAL_RELEASE:
        return False  # a promote / rollback owed to the driver is wanted below
    if r.status == ReleaseStatus.PENDING:
        transition(
            r,
            ReleaseStatus.PROGRESSING,
            "",
            event_type="release.started",
            actor=actor,
            door=door,
        )
        return True
    if r.status == ReleaseStatus.PAUSED:
        return _end_pause_if_over(r, now, actor, door)
    # progressing: traffic first (the driver call is made after commit)
    if r.weight != r.desired_weight:
        return False
    steps = r.strategy or []
    if r.step_index >= len(steps):
        r.message = ""
        transition(r, ReleaseStatus.SUCCEEDED, "all steps done", actor=actor, door=door)
        r.driver_action = "promote"
        return True
    return _run_step(r, steps[r.step_index], now, actor, door)


def _end_pause_if_over(r, now, actor, door) -> bool:
    if r.pause_until and now >= r.pause_until:
        r.pause_until = None
        r.step_index += 1
        transition(r, ReleaseStatus.PROGRESSING, "pause over", actor=actor, door=door)
        return True
    r.next_tick_at = r.pause_until
    return False


def _run_step(r, step, now, actor, door) -> bool:
    """The current step of a progressing release whose traffic is where it is wanted."""
    if "set_weight" in step:
        r.desired_weight = step["set_weight"]
        if r.weight == r.desired_weight:
            r.step_index += 1
        return True  # else apply it (above), then move on
    if "pause" in step:
        duration = (step["pause"] or {}).get("duration")
        r.pause_until = now + timedelta(seconds=duration) if duration else None
        msg = f"pausing {duration:g} s" if duration else "waiting for promote"
        transition(r, ReleaseStatus.PAUSED, msg, actor=actor, door=door)
        if duration:
            r.next_tick_at = r.pause_until
        return False
    if "analysis" in step:
        return _after_analysis(r, _analysis_step(r, step["analysis"], now), actor, door)
    return False


def _after_analysis(r, outcome, actor, door) -> bool:
    if outcome == AnalysisStatus.SUCCESSFUL:
        r.step_index += 1
        return True
    if outcome == AnalysisStatus.FAILED:
        r.desired_weight = 0
        r.driver_action = "rollback"
        transition(r, ReleaseStatus.FAILED, r.message, actor=actor, door=door)
        return True
    if outcome in (AnalysisStatus.INCONCLUSIVE, AnalysisStatus.ERROR):
        r.pause_until = None
        transition(r, ReleaseStatus.PAUSED, r.message, actor=actor, door=door)
    return False  # running: next_tick_at set


def wanted_call(r) -> tuple[str, int] | None:
    """The driver call the row's state asks for: (action, weight), or None."""
    if r.status in FINAL_RELEASE:
        if r.driver_action == "rollback":
            return ("rollback", 0)
        if r.driver_action == "promote":
            return ("promote", 100)
        return None
    if r.status == ReleaseStatus.PROGRESSING and r.weight != r.desired_weight:
        return ("set_weight", r.desired_weight)
    return None


def _want(r, now):
    """Record the wanted driver call (a new id only when the wanted state changed)."""
    wanted = wanted_call(r)
    call = r.driver_call or {}
    if wanted is None:
        r.driver_call = {}
        return
    if (call.get("action"), call.get("weight")) != wanted:
        r.driver_call = {
            "id": uuid.uuid4().hex,
            "action": wanted[0],
            "weight": wanted[1],
            "at": now.isoformat(),
        }
    if r.next_tick_at is None:  # beat hands it over again if nobody confirms it
        r.next_tick_at = now + timedelta(seconds=settings.RELEASES_DRIVER_CONFIRM_SECONDS)


def kick(release_id):
    """Have a worker hand the release's wanted call to the driver (after commit)."""

    def send():
        try:
            enqueue(ADVANCE_TASK, release_id)
        except Exception as exc:  # noqa: BLE001 - beat hands it over anyway
            log.warning("release %s: could not enqueue advance_release: %s", release_id, exc)

    transaction.on_commit(send)


def _analysis_step(r, spec, now) -> str:
    run = reads.run_of(r)
    if run is None:
        template = AnalysisTemplate.objects.filter(name=spec.get("template")).first()
        if template is None:
            analysis.ensure_default_templates()
            template = AnalysisTemplate.objects.filter(name=spec.get("template")).first()
        if template is None:
            r.message = f"analysis template {spec.get('template')!r} does not exist"
            return AnalysisStatus.ERROR
        mets = analysis.resolve_metrics(template, spec)
        first = min(float(m["interval"]) for m in mets)
        run = AnalysisRun.objects.create(
            release=r,
            generation=r.generation,
            step_index=r.step_index,
            weight=r.weight,
            template=template.name,
            metrics=mets,
            status=AnalysisStatus.RUNNING,
            started_at=now,
            next_measure_at=now + timedelta(seconds=first),
        )
        note(r, "analysis", f"analysis {template.name} started at {r.weight} %")
        r.next_tick_at = run.next_measure_at
        return AnalysisStatus.RUNNING
    if run.status == AnalysisStatus.RUNNING and run.next_measure_at and run.next_measure_at <= now:
        _measure(r, run, now)
    if run.status == AnalysisStatus.RUNNING:
        r.next_tick_at = run.next_measure_at
    elif run.status != AnalysisStatus.SUCCESSFUL:
        r.message = run.message
    return run.status


def _measure(r, run, now):
    """Take the measurements that are due; judge the run."""
    backend = reads.current()  # the batch's, or read now for this release alone
    at = backend.at
    created = []
    existing: dict[str, list] = {}
    for m in reads.measurements_of(run):
        existing.setdefault(m.metric, []).append(m)
    verdicts, next_due, reasons = [], [], []
    for m in run.metrics:
        done = existing.get(m["name"], [])
        phases = [x.phase for x in done]
        verdict = analysis.metric_verdict(m, phases)
        interval = float(m["interval"])
        due = (
            (done[-1].at + timedelta(seconds=interval))
            if done
            else run.started_at + timedelta(seconds=interval)
        )
        if verdict == "running" and due <= now + timedelta(seconds=0.25):
            values = analysis.measure(backend, r.service, m, now=at)
            meas = Measurement(
                analysis_run=run, metric=m["name"], index=len(done), at=now, **values
            )
            created.append(meas)
            phases.append(meas.phase)
            verdict = analysis.metric_verdict(m, phases)
            due = now + timedelta(seconds=interval)
            if verdict != "running" and verdict != "successful":
                reasons.append(analysis.failure_reason(m, meas, verdict))
        elif verdict not in ("running", "successful"):
            reasons.append(f"{m['name']}: {verdict}")
        verdicts.append(verdict)
        if verdict == "running":
            next_due.append(due)
    reads.taken(run, created)
    outcome = analysis.run_verdict(verdicts)
    run.status = outcome
    if outcome == "running":
        run.next_measure_at = min(next_due) if next_due else now
    else:
        run.finished_at = now
        run.next_measure_at = None
        run.message = analysis.OUTCOME_MESSAGE[outcome] + "; ".join(reasons)
        note(r, "analysis", f"analysis {run.template}: {run.message}")
    reads.save(run, MEASURED_FIELDS)


# --- entry points for tasks ----------------------------------------------------------------------
def advance(release_id, *, wait=True) -> str:
    """Drive one release under its row lock: its status, or ``"skipped"`` when it is not driven
    (not active, or locked by someone else with ``wait=False``)."""
    with transaction.atomic():
        r = _drivable(skip_locked=not wait).filter(pk=release_id).first()
        return "skipped" if r is None else drive(r).status


ACTIVE_OR_OWED = Q(status__in=ACTIVE_RELEASE) | ~Q(driver_action="")


def _drivable(*, skip_locked: bool):
    """The releases drive() may work on, locked as they are read (with what it reads of them)."""
    qs = Release.objects.select_related("service", "service__owner", "environment")
    return qs.select_for_update(of=("self",), skip_locked=skip_locked).filter(ACTIVE_OR_OWED)


def due(now=None):
    """The releases due now (the partial index ``release_due_idx`` serves this filter)."""
    now = now or timezone.now()
    return (
        Release.objects.filter(ACTIVE_OR_OWED)
        .filter(Q(next_tick_at__isnull=True) | Q(next_tick_at__lte=now))
        .exclude(status=ReleaseStatus.PAUSED, pause_until__isnull=True, driver_action="")
    )


def due_ids(now=None):
    return list(due(now).order_by("next_tick_at").values_list("pk", flat=True)[:CLAIM_BATCH])


def claim_due(limit=None, now=None) -> list[int]:
    """Claim up to ``limit`` due releases (``portal.claims``): their ``next_tick_at`` moves one
    lease ahead, so no other claimer takes them; driving them sets it for real."""
    now = now or timezone.now()
    lease = now + timedelta(seconds=settings.RELEASES_CLAIM_LEASE_SECONDS)
    return claims.claim(due(now), "next_tick_at", lease, limit or CLAIM_BATCH)


def drive_claimed(ids, at: float | None = None) -> int:
    """Drive the claimed releases: locked together (one query; a row someone else holds is
    skipped), their due analyses measured from reads made for the whole batch at once at
    ``at`` (``reads.batch``), and the rows they change written together at the end (three
    statements); a wanted driver call goes to a worker (``kick``, after commit).

    The batch is driven in one savepoint; should any release raise, that savepoint is rolled
    back and the batch driven again from freshly read rows with each release in its own
    savepoint, so one broken release does not stop the others (the savepoint per release, most
    of a release's cost, is paid only in a batch that needs it)."""
    if not ids:
        return 0
    at = at if at is not None else time.time()
    with transaction.atomic():
        try:
            with transaction.atomic():
                return _drive_locked(_lock(ids), at, alone=False)
        except Exception:  # noqa: BLE001 - driven again below, each release on its own
            log.warning("release batch of %d: an error, driving each alone", len(ids))
        return _drive_locked(_lock(ids), at, alone=True)


def _lock(ids) -> list:
    return list(_drivable(skip_locked=True).filter(pk__in=claims.ids_in(ids)).order_by("pk"))


def _drive_locked(locked, at: float, *, alone: bool) -> int:
    """Drive ``locked``; ``alone``: each in a savepoint, a release that raises is logged and
    its deferred writes dropped; else the first error raises."""
    n = 0
    with reads.batch(locked, at):
        for r in locked:
            mark = reads.mark()
            try:
                if alone:
                    with transaction.atomic():
                        drive(r)
                else:
                    drive(r)
            except Exception:  # noqa: BLE001 - one broken release must not stop the others
                if not alone:
                    raise
                reads.undo(mark)  # its rows are written as they were
                log.exception("release %s: controller error", r.pk)
                continue
            if r.driver_call:
                kick(r.pk)
            n += 1
    return n


def tick_all() -> int:
    """Drive every due release here, batch by batch (tests, ``manage.py`` and the embedded
    mode; beat fans the batches out instead, ``dispatch``)."""
    n, seen = 0, set()
    while (ids := claim_due()) and not seen.issuperset(ids):
        seen.update(ids)
        n += drive_claimed(ids)
    return n


def dispatch() -> int:
    """Beat: claim the due releases in batches and hand each batch to a worker
    (``drive_releases``), so every worker process shares the tick; what falls due while it
    claims waits for the next tick (``claims.fan_out``). Nothing due: one query."""
    now = timezone.now()
    ids = claim_due(now=now)
    if len(ids) <= DRIVE_HERE:  # a quiet tick: no hop through the broker
        return drive_claimed(ids)
    return claims.fan_out(
        lambda: claim_due(now=now),
        lambda batch: enqueue(DRIVE_TASK, batch),
        CLAIM_BATCH,
        MAX_CLAIMED_PER_TICK,
        first=ids,
    )
