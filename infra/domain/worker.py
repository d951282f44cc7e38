"""Worker and beat transitions of a run: each one writes its audit event and emits
``infra.run.<what>``; the reaper of runs whose worker stopped heartbeating."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from infra.domain.queue import APPLY_TASK, PLAN_TASK, _locked, _release
from infra.domain.workspaces import SCOPE, record
from infra.models import (
    TERMINAL,
    DriftStatus,
    RunStatus,
    TerraformRun,
    Workspace,
)
from portal.actors import Actor
from portal.celery import enqueue
from portal.errors import Forbidden
from portal.events import emit
from portal.joblog import append_notice
from portal.jobs import reap_stale, requeue_waiting
from portal.principal import actor_for


def _worker():

    return Actor.system("terraform-runner", door="worker")


# the outbound event of each run transition (registered in infra/apps.py)
RUN_EVENTS = {
    "planning": "infra.run.planning",
    "planned": "infra.run.planned",
    "planned_and_finished": "infra.run.planned_and_finished",
    "applying": "infra.run.applying",
    "applied": "infra.run.applied",
    "errored": "infra.run.errored",
    "canceled": "infra.run.canceled",
    "discarded": "infra.run.discarded",
    "lost": "infra.run.lost",
}


def _announce(ws, run, what, *, actor=None, **extra):
    """Emit ``infra.run.<what>``; with ``actor``, record the audit event of the same name (a
    person's action records its own audit event and passes no actor)."""
    payload = {
        "run": run.pk,
        "number": run.number,
        "workspace": ws.slug,
        "kind": run.kind,
        "status": run.status,
        **extra,
    }
    event = RUN_EVENTS[str(what)]
    if actor is not None:
        record(actor, event, run, ws, **payload)
    emit(event, ws.owner, payload)


def claim(run_id, phase: str, worker: str) -> bool:
    """pending → planning (phase "plan") or confirmed → applying ("apply") for the lock
    holder; a duplicate delivery, or a second worker, claims nothing. The rows are locked and
    read again first: a conditional UPDATE through a join (``id IN (SELECT ...)``) would let two
    concurrent claims both succeed, as PostgreSQL rechecks only the target row's own columns."""
    now = timezone.now()
    want, status = (
        (RunStatus.PENDING, RunStatus.PLANNING)
        if phase == "plan"
        else (RunStatus.CONFIRMED, RunStatus.APPLYING)
    )
    if not TerraformRun.objects.filter(pk=run_id, status=want).exists():
        return False  # a duplicate delivery: answered without taking any lock
    with transaction.atomic():
        ws, run = _locked(run_id)
        if run.status != want or ws.lock_run_id != run.pk:
            return False
        run.status, run.heartbeat_at, run.worker = status, now, worker
        if phase == "plan":
            run.plan_started_at = now
        else:
            run.apply_started_at = now
        run.save(
            update_fields=[
                "status",
                "heartbeat_at",
                "worker",
                "plan_started_at",
                "apply_started_at",
            ]
        )
        _announce(ws, run, run.status, actor=_worker(), worker=worker)
    return True


def finish(run_id, expected, status, *, actor=None, **fields) -> bool:
    """Move a run from ``expected`` to ``status`` (conditional); release the lock when over.
    Emits ``infra.run.<status>`` (planned, planned_and_finished, applied, errored, ...)."""
    with transaction.atomic():
        ws, run = _locked(run_id)
        if run.status != expected:
            return False
        run.status = status
        for k, v in fields.items():
            setattr(run, k, v)
        if status in TERMINAL:
            run.finished_at = timezone.now()
        if status == RunStatus.PLANNED:
            run.planned_at = timezone.now()
        elif "planned_at" not in fields and status == RunStatus.PLANNED_AND_FINISHED:
            run.planned_at = timezone.now()
        run.save()
        extra = {"error": run.error[:500]} if status == RunStatus.ERRORED else {}
        _announce(ws, run, status, actor=actor or _worker(), **extra)
        if status in TERMINAL:
            _release(ws, run)
    return True


def auto_confirm(run_id) -> bool:
    """planned → confirmed for auto-apply runs (the worker applies right after), acting as the
    run's starter (``portal.principal``): one who may no longer apply (a token without
    ``infra:apply``, revoked, expired; a user who left the squad) leaves the run planned, awaiting
    a confirmation, and the log says why."""

    with transaction.atomic():
        ws, run = _locked(run_id)
        if run.status != RunStatus.PLANNED or ws.lock_run_id != run.pk:
            return False
        try:
            actor = actor_for(run, squad=ws.owner, door="worker")
            actor.require(SCOPE, ws.owner, "applying this workspace")
        except Forbidden as exc:
            append_notice(run, f"\n[backline] auto-apply skipped: {exc.text} Confirm by hand.\n")
            run.save(update_fields=["log_size"])
            return False
        run.status = RunStatus.CONFIRMED
        run.confirmed_at = timezone.now()
        run.confirmed_by = f"auto-apply as {actor.label}"[:200]
        run.save(update_fields=["status", "confirmed_at", "confirmed_by"])
        record(actor, "infra.run.apply", run, ws, auto_apply=True)
    return True


def record_applied_state(ws_id, *, serial, lineage, outputs):
    fields = {
        "last_applied_at": timezone.now(),
        "outputs": outputs,
        # the apply may have accepted or fixed drift: check again at the next beat
        "drift_status": DriftStatus.UNKNOWN,
        "drift_checked_at": None,
    }
    if serial is not None:
        fields["state_serial"] = serial
        fields["state_lineage"] = lineage or ""
    Workspace.objects.filter(pk=ws_id).update(**fields)


def _mark_lost(run, silent):
    ws = run.workspace
    phase = run.status
    run.status = RunStatus.ERRORED
    run.lost = True
    run.error = (
        f"Lost: the worker {run.worker or ''} stopped sending heartbeats while "
        f"{phase} (last at {run.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC). The lock was "
        "released; check the state before planning again."
    )
    run.finished_at = timezone.now()
    append_notice(run, f"\n[backline] {run.error}\n")
    run.save(update_fields=["status", "lost", "error", "finished_at", "log_size"])

    actor = Actor.system("reaper", door="beat")
    _announce(ws, run, "lost", actor=actor, phase=phase, silent_seconds=silent)
    _release(ws, run)


def _requeue(run_id):
    status = TerraformRun.objects.values_list("status", flat=True).get(pk=run_id)
    task = PLAN_TASK if status == RunStatus.PENDING else APPLY_TASK
    transaction.on_commit(lambda: enqueue(task, run_id))


def reap_lost_runs(stale_seconds=None) -> int:
    """Runs whose worker stopped heartbeating become errored (lost) and release the lock; lock
    holders whose task never started are enqueued again."""
    stale = stale_seconds if stale_seconds is not None else settings.HEARTBEAT_STALE_SECONDS
    lost = reap_stale(
        TerraformRun, stale_seconds=stale, on_lost=_mark_lost, lock=lambda pk: _locked(pk)[1]
    )
    # Tasks lost before they started (broker flushed, worker died before ack): enqueue again,
    # at most every few minutes (a claimed task makes the duplicates no-ops).
    requeue_waiting(
        TerraformRun.objects.filter(
            status__in=[RunStatus.PENDING, RunStatus.CONFIRMED], workspace__lock_run_id=F("pk")
        ),
        stamp_field="enqueued_at",
        older_than=max(4 * stale, 120),
        enqueue=_requeue,
    )
    return len(lost)
