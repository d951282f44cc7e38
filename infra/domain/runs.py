"""Run transitions made by people (confirm = apply, discard, cancel, force-unlock) and reading
a run's log."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from infra.domain.queue import _dispatch_next, _enqueue, _locked, _release
from infra.domain.worker import _announce
from infra.domain.workspaces import SCOPE, record
from infra.models import (
    EXECUTING,
    LogChunk,
    RunStatus,
    TerraformRun,
    Workspace,
)
from infra.tfjob import read_local_state
from portal import joblog
from portal.actors import Actor
from portal.errors import Conflict


def stale_reason(ws: Workspace, run: TerraformRun) -> str:
    newer = (
        TerraformRun.objects.filter(
            workspace=ws, status=RunStatus.APPLIED, finished_at__gt=run.planned_at
        )
        .exclude(pk=run.pk)
        .order_by("finished_at")
        .first()
    )
    if newer is not None:
        return (
            f"run #{newer.number} was applied after this plan was made; the plan no longer "
            "matches the state"
        )
    if ws.backend in (Workspace.Backend.LOCAL, Workspace.Backend.PG):
        serial, lineage = read_local_state(ws)
        if (serial, lineage) != (run.state_serial_at_plan, run.state_lineage_at_plan or ""):
            return (
                "the state changed after this plan was made (serial "
                f"{run.state_serial_at_plan} → {serial}"
                + (", new lineage" if lineage != (run.state_lineage_at_plan or "") else "")
                + "), outside this run"
            )
    return ""


def _discard(ws, run, actor, reason, action):
    run.status = RunStatus.DISCARDED
    run.discard_reason = reason
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "discard_reason", "finished_at"])
    record(actor, action, run, ws, reason=reason)
    _announce(ws, run, RunStatus.DISCARDED, reason=reason)
    _release(ws, run)


def allowed_actions(run: TerraformRun, actor: Actor) -> set[str]:
    """What ``actor`` may do next with ``run`` (the rules the actions below apply)."""
    if not actor.can(SCOPE, run.workspace.owner):
        return set()
    if run.status == RunStatus.PLANNED:
        return {"apply", "discard"}
    if run.status in (RunStatus.PENDING, RunStatus.CONFIRMED) or run.status in EXECUTING:
        return {"cancel"}
    return set()


def _require_planned(run: TerraformRun, only: str) -> None:
    if run.status != RunStatus.PLANNED:
        raise Conflict(f"Run #{run.number} is {run.status}; {only}", state=run.status)


def apply_run(run: TerraformRun, *, actor: Actor) -> TerraformRun:
    """Confirm a planned run: exactly its saved plan file will be applied by a worker."""
    actor.require(SCOPE, run.workspace.owner, "applying this workspace")
    stale = ""
    with transaction.atomic():
        ws, run = _locked(run.pk)
        _require_planned(run, "only a run awaiting confirmation (planned) can be applied.")
        if ws.lock_run_id not in (None, run.pk):
            holder = TerraformRun.objects.get(pk=ws.lock_run_id)
            raise Conflict(
                f"The workspace is locked by run #{holder.number} ({holder.status}).",
                state=run.status,
            )
        stale = stale_reason(ws, run)
        if stale:
            _discard(ws, run, actor, f"Stale plan: {stale}.", "infra.run.discard_stale")
        else:
            if ws.lock_run_id is None:
                ws.lock_run = run
                ws.locked_at = timezone.now()
                ws.save(update_fields=["lock_run", "locked_at", "updated_at"])
            run.status = RunStatus.CONFIRMED
            run.confirmed_at = timezone.now()
            run.confirmed_by = actor.label
            run.save(update_fields=["status", "confirmed_at", "confirmed_by"])
            record(actor, "infra.run.apply", run, ws)
            _enqueue(run, "apply")
    if stale:
        raise Conflict(
            f"The plan of run #{run.number} is stale: {stale}. The run was discarded; "
            "start a new plan.",
            code="stale_plan",
            state=RunStatus.DISCARDED,
        )
    run.refresh_from_db()
    return run


def discard_run(run: TerraformRun, *, actor: Actor, reason: str = "") -> TerraformRun:
    actor.require(SCOPE, run.workspace.owner, "discarding this run")
    with transaction.atomic():
        ws, run = _locked(run.pk)
        _require_planned(
            run, "only a planned run can be discarded (cancel a pending or running one)."
        )
        _discard(ws, run, actor, reason or f"Discarded by {actor.label}.", "infra.run.discard")
    run.refresh_from_db()
    return run


def cancel_run(run: TerraformRun, *, actor: Actor) -> TerraformRun:
    """Pending/confirmed: canceled at once. Planning/applying: the worker interrupts terraform,
    then kills its process group, and marks the run canceled."""
    actor.require(SCOPE, run.workspace.owner, "canceling this run")
    with transaction.atomic():
        ws, run = _locked(run.pk)
        if run.status in (RunStatus.PENDING, RunStatus.CONFIRMED):
            run.status = RunStatus.CANCELED
            run.finished_at = timezone.now()
            run.save(update_fields=["status", "finished_at"])
            _announce(ws, run, RunStatus.CANCELED, by=actor.label)
            _release(ws, run)
        elif run.status in EXECUTING:
            run.cancel_requested = True
            run.save(update_fields=["cancel_requested"])
        else:
            raise Conflict(
                f"Run #{run.number} is {run.status} and cannot be canceled"
                + (" (discard it instead)." if run.status == RunStatus.PLANNED else "."),
                state=run.status,
            )
        record(actor, "infra.run.cancel", run, ws)
    run.refresh_from_db()
    return run


def force_unlock(ws: Workspace, *, actor: Actor) -> TerraformRun | None:
    """Admins only. A running holder is marked errored (its worker stops at its next check)."""
    actor.require_admin("force-unlock a workspace")
    with transaction.atomic():
        ws = Workspace.objects.select_for_update(no_key=True).get(pk=ws.pk)
        if ws.lock_run_id is None:
            raise Conflict("The workspace is not locked.", state="unlocked")
        holder = TerraformRun.objects.select_for_update(no_key=True).get(pk=ws.lock_run_id)
        before = holder.status
        if holder.status in EXECUTING:
            holder.status = RunStatus.ERRORED
            holder.error = f"Force-unlocked by {actor.label} while {before}."
            holder.cancel_requested = True
            holder.finished_at = timezone.now()
            holder.save(update_fields=["status", "error", "cancel_requested", "finished_at"])
            _announce(ws, holder, RunStatus.ERRORED, error=holder.error)
        ws.lock_run = None
        ws.locked_at = None
        ws.save(update_fields=["lock_run", "locked_at", "updated_at"])
        data = {"run": holder.pk, "number": holder.number, "run_status": before}
        record(actor, "infra.workspace.force_unlock", ws, ws, **data)
        _dispatch_next(ws)
    return holder


def read_log(run: TerraformRun, offset=0, limit=256 * 1024):
    """(text, next_offset) of the run's log from byte ``offset``, at most about ``limit``."""
    return joblog.read(LogChunk, run.pk, offset, limit=limit)


def log_page(run: TerraformRun, offset, *, limit):
    """The log answer (``portal.joblog.page``) of a run; ``run`` read just before."""
    return joblog.page(run, offset, limit=limit)
