"""The workspace lock and the queue of runs waiting for it.

Locking order, everywhere: the workspace row first, then the run row. The workspace's
``lock_run`` is the one active run allowed to use it; later runs wait (``pending``) in order of
creation and are dispatched when the lock is released.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from infra.domain.workspaces import SCOPE, record
from infra.models import (
    RunStatus,
    SavedPlan,
    TerraformRun,
    Workspace,
)
from portal.actors import Actor
from portal.celery import enqueue
from portal.principal import started_by

# enqueued by name: infra.tasks imports the domain (through infra.runner and infra.services)
PLAN_TASK = "infra.tasks.plan_run"
APPLY_TASK = "infra.tasks.apply_run"


def _enqueue(run: TerraformRun, phase: str):
    task = PLAN_TASK if phase == "plan" else APPLY_TASK
    TerraformRun.objects.filter(pk=run.pk).update(enqueued_at=timezone.now())
    run_id = run.pk
    transaction.on_commit(lambda: enqueue(task, run_id))


def _dispatch_next(ws: Workspace):
    """Give the free lock to the oldest pending run and enqueue it. ``ws`` is row-locked."""
    if ws.lock_run_id is not None:
        return None
    nxt = (
        TerraformRun.objects.select_for_update(no_key=True)
        .filter(workspace=ws, status=RunStatus.PENDING)
        .order_by("created_at", "id")
        .first()
    )
    if nxt is None:
        return None
    ws.lock_run = nxt
    ws.locked_at = timezone.now()
    ws.save(update_fields=["lock_run", "locked_at", "updated_at"])
    _enqueue(nxt, "plan")
    return nxt


def _release(ws: Workspace, run: TerraformRun):
    SavedPlan.objects.filter(run_id=run.pk).delete()  # the run is over: its plan is spent
    if ws.lock_run_id == run.pk:
        ws.lock_run = None
        ws.locked_at = None
        ws.save(update_fields=["lock_run", "locked_at", "updated_at"])
        _dispatch_next(ws)


def _locked(run_id):
    """(workspace, run), both row-locked, workspace first."""
    ws_id = TerraformRun.objects.values_list("workspace_id", flat=True).get(pk=run_id)
    ws = Workspace.objects.select_for_update(no_key=True).get(pk=ws_id)
    run = TerraformRun.objects.select_for_update(no_key=True).get(pk=run_id)
    return ws, run


def queue_run(
    ws: Workspace,
    *,
    actor: Actor,
    message: str = "",
    kind: str = TerraformRun.Kind.PLAN,
    auto_apply: bool | None = None,
) -> TerraformRun:
    """Start a plan (or a drift check): the run waits in order for the workspace lock."""
    if kind == TerraformRun.Kind.PLAN:
        actor.require(SCOPE, ws.owner, "planning this workspace")
    with transaction.atomic():
        ws = Workspace.objects.select_for_update(no_key=True).get(pk=ws.pk)
        number = (
            TerraformRun.objects.filter(workspace=ws).aggregate(n=Max("number"))["n"] or 0
        ) + 1
        run = TerraformRun.objects.create(
            workspace=ws,
            number=number,
            kind=kind,
            message=(message or "")[:300],
            trigger=actor.door,
            created_by=actor.label,
            created_by_user=actor.user,
            **started_by(actor),
            auto_apply=ws.auto_apply if auto_apply is None else bool(auto_apply),
        )
        action = "infra.run.drift_check" if kind == TerraformRun.Kind.DRIFT else "infra.run.plan"
        record(actor, action, run, ws, number=number, message=run.message)
        _dispatch_next(ws)
    run.refresh_from_db()
    return run


def waiting_for(run: TerraformRun) -> str:
    """What a pending run waits for, in words."""
    if run.status != RunStatus.PENDING:
        return ""
    ws = Workspace.objects.select_related("lock_run").get(pk=run.workspace_id)
    holder = ws.lock_run
    if holder is not None and holder.pk == run.pk:
        return "Waiting for a worker to pick it up."
    ahead = TerraformRun.objects.filter(
        workspace_id=run.workspace_id, status=RunStatus.PENDING, created_at__lt=run.created_at
    ).count()
    parts = []
    if holder is not None:
        doing: dict[str, str] = {
            RunStatus.PLANNED: "awaiting confirmation",
            RunStatus.PLANNING: "planning",
            RunStatus.APPLYING: "applying",
            RunStatus.CONFIRMED: "confirmed, about to apply",
            RunStatus.PENDING: "waiting for a worker",
        }
        what = doing.get(holder.status, holder.status)
        parts.append(f"Waiting for run #{holder.number} ({what}) to finish")
    else:
        parts.append("Waiting for the workspace lock")
    if ahead:
        parts.append(f"{ahead} earlier run{'s' if ahead != 1 else ''} queued ahead")
    return "; ".join(parts) + "."
