"""Domain operations for Terraform workspaces and runs: one function per state change.

Locking order, everywhere: the workspace row first, then the run row. The workspace's
``lock_run`` is the one active run allowed to use it; later runs wait (``pending``) in order of
creation and are dispatched when the lock is released.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Max
from django.utils import timezone

from infra.models import (
    ENV_KEY_RE,
    EXECUTING,
    FILENAME_RE,
    RESERVED_ENV,
    TERMINAL,
    VAR_KEY_RE,
    DriftStatus,
    LogChunk,
    RunStatus,
    TerraformRun,
    Variable,
    Workspace,
)
from portal import audit, joblog
from portal.actors import Actor
from portal.errors import Conflict, Invalid
from portal.events import emit
from portal.gitref import valid_branch
from portal.joblog import append_notice
from portal.jobs import reap_stale, requeue_waiting

SCOPE = "infra:apply"
RESERVED_SLUGS = {"new", "board", "runs"}


# --- workspaces and variables ------------------------------------------------------------------
def validate_files(files: Any) -> None:
    if not isinstance(files, dict):
        raise Invalid(errors={"files": "must be an object of {filename: content}"})
    for name, content in files.items():
        if not FILENAME_RE.match(str(name)):
            raise Invalid(
                errors={
                    "files": f"{name!r} is not an allowed file name (letters, digits, ._-; ending .tf, .tf.json or .tfvars)"
                }
            )
        if not isinstance(content, str):
            raise Invalid(errors={"files": f"the content of {name!r} must be text"})
    if sum(len(c) for c in files.values()) > 2 * 2**20:
        raise Invalid(errors={"files": "the stored configuration is limited to 2 MiB"})


def _validate_workspace(ws: Workspace) -> None:
    if ws.source == Workspace.Source.STORED:
        validate_files(ws.files)
    else:
        if not ws.repository_url.strip():
            raise Invalid(errors={"repository_url": "a git workspace needs a repository URL"})
        if ws.repository_url.strip().startswith("-"):
            raise Invalid(errors={"repository_url": "not a repository URL"})
        if not valid_branch(ws.ref or ""):  # git's own rules (portal.gitref)
            raise Invalid(errors={"ref": f"{ws.ref!r} is not a valid branch or tag name"})
        parts = [p for p in (ws.path or "").split("/") if p]
        if ws.path.startswith("/") or ".." in parts:
            raise Invalid(errors={"path": "must be a relative path inside the repository"})


WORKSPACE_FIELDS = (
    "name",
    "description",
    "source",
    "files",
    "repository_url",
    "ref",
    "path",
    "terraform_bin",
    "backend",
    "allow_provisioners",
    "auto_apply",
    "drift_checks",
    "drift_interval_minutes",
)


def _require_admin_for_sandbox_fields(actor: Actor, ws: Workspace | None, fields: dict) -> None:
    """Where state lives and whether provisioners run are the installation's business: a
    backend from the code (which could name another workspace's state) and local-exec /
    remote-exec provisioners are org admin decisions."""
    backend = fields.get("backend")
    if backend and backend != Workspace.Backend.LOCAL and (ws is None or ws.backend != backend):
        actor.require_admin("let a workspace's code configure its Terraform backend")
    allow = fields.get("allow_provisioners")
    if allow is not None and allow != (ws.allow_provisioners if ws is not None else False):
        actor.require_admin("allow local-exec/remote-exec provisioners for a workspace")


def create_workspace(
    owner: Any, *, actor: Actor, slug: str, services: Iterable[Any] = (), **fields: Any
) -> Workspace:
    actor.require(SCOPE, owner, "creating a Terraform workspace for this squad")
    if slug in RESERVED_SLUGS:
        raise Invalid(errors={"slug": f"{slug!r} is reserved; choose another slug"})
    if fields.get("terraform_bin"):
        actor.require_admin("choose the terraform binary of a workspace")
    _require_admin_for_sandbox_fields(actor, None, fields)
    ws = Workspace(slug=slug, owner=owner, **{k: v for k, v in fields.items() if v is not None})
    _validate_workspace(ws)
    try:
        with transaction.atomic():
            ws.save()
            if services:
                ws.services.set(services)
            audit.record(
                actor,
                "infra.workspace.create",
                ws,
                squad=owner,
                data={"source": ws.source, "services": [s.slug for s in services]},
            )
    except IntegrityError as exc:
        raise Invalid(errors={"slug": f"a workspace with slug {slug!r} already exists"}) from exc
    return ws


def update_workspace(
    ws: Workspace,
    *,
    actor: Actor,
    services: Iterable[Any] | None = None,
    owner: Any = None,
    **fields: Any,
) -> Workspace:
    actor.require(SCOPE, ws.owner, "changing this workspace")
    if owner is not None and owner != ws.owner:
        actor.require(SCOPE, owner, "moving the workspace to that squad")
    if fields.get("terraform_bin"):
        actor.require_admin("choose the terraform binary of a workspace")
    _require_admin_for_sandbox_fields(actor, ws, fields)
    with transaction.atomic():
        ws = Workspace.objects.select_for_update().get(pk=ws.pk)
        changed: list[str] = []
        for key, value in fields.items():
            if key in WORKSPACE_FIELDS and value is not None and getattr(ws, key) != value:
                setattr(ws, key, value)
                changed.append(key)
        if owner is not None and owner != ws.owner:
            ws.owner = owner
            changed.append("owner")
        _validate_workspace(ws)
        ws.save()
        if services is not None:
            ws.services.set(services)
            changed.append("services")
        audit.record(actor, "infra.workspace.update", ws, squad=ws.owner, data={"changed": changed})
    return ws


def set_variable(
    ws: Workspace,
    *,
    actor: Actor,
    key: str,
    value: Any,
    category: str = "terraform",
    sensitive: bool = False,
    description: str = "",
) -> Variable:
    actor.require(SCOPE, ws.owner, "changing this workspace's variables")
    key = (key or "").strip()
    if category not in Variable.Category.values:
        raise Invalid(errors={"category": f"must be one of {', '.join(Variable.Category.values)}"})
    pattern = ENV_KEY_RE if category == "env" else VAR_KEY_RE
    if not pattern.match(key):
        raise Invalid(errors={"key": f"{key!r} is not a valid {category} variable name"})
    if category == "env" and (key in RESERVED_ENV or key.startswith("TF_VAR_")):
        raise Invalid(
            errors={"key": f"{key} is set by Backline (use a Terraform variable for TF_VAR_*)"}
        )
    if not isinstance(value, str):
        value = json.dumps(value) if not isinstance(value, (int, float)) else str(value)
    with transaction.atomic():
        var = (
            Variable.objects.select_for_update()
            .filter(workspace=ws, key=key, category=category)
            .first()
        )
        created = var is None
        if var is None:
            var = Variable(workspace=ws, key=key, category=category)
        elif var.sensitive and not sensitive:
            raise Invalid(
                errors={
                    "sensitive": f"{key} is sensitive; a sensitive variable cannot be made plain"
                }
            )
        var.value = value
        var.sensitive = bool(sensitive)
        var.description = description or var.description
        var.save()
        audit.record(
            actor,
            "infra.variable.create" if created else "infra.variable.update",
            var,
            squad=ws.owner,
            data={
                "workspace": ws.slug,
                "key": key,
                "category": category,
                "sensitive": var.sensitive,
            },
        )
    return var


def delete_variable(var: Variable, *, actor: Actor) -> None:
    ws = var.workspace
    actor.require(SCOPE, ws.owner, "changing this workspace's variables")
    with transaction.atomic():
        audit.record(
            actor,
            "infra.variable.delete",
            var,
            squad=ws.owner,
            data={"workspace": ws.slug, "key": var.key, "category": var.category},
        )
        var.delete()


# --- queue and lock -----------------------------------------------------------------------------
def _enqueue(run: TerraformRun, phase: str):
    from infra import tasks

    task = tasks.plan_run if phase == "plan" else tasks.apply_run
    TerraformRun.objects.filter(pk=run.pk).update(enqueued_at=timezone.now())
    run_id = run.pk
    transaction.on_commit(lambda: task.delay(run_id))


def _dispatch_next(ws: Workspace):
    """Give the free lock to the oldest pending run and enqueue it. ``ws`` is row-locked."""
    if ws.lock_run_id is not None:
        return None
    nxt = (
        TerraformRun.objects.select_for_update()
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
    if ws.lock_run_id == run.pk:
        ws.lock_run = None
        ws.locked_at = None
        ws.save(update_fields=["lock_run", "locked_at", "updated_at"])
        _dispatch_next(ws)


def _locked(run_id):
    """(workspace, run), both row-locked, workspace first."""
    ws_id = TerraformRun.objects.values_list("workspace_id", flat=True).get(pk=run_id)
    ws = Workspace.objects.select_for_update().get(pk=ws_id)
    run = TerraformRun.objects.select_for_update().get(pk=run_id)
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
        ws = Workspace.objects.select_for_update().get(pk=ws.pk)
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
            auto_apply=ws.auto_apply if auto_apply is None else bool(auto_apply),
        )
        audit.record(
            actor,
            "infra.run.drift_check" if kind == TerraformRun.Kind.DRIFT else "infra.run.plan",
            run,
            squad=ws.owner,
            data={"workspace": ws.slug, "number": number, "message": run.message},
        )
        _dispatch_next(ws)
    run.refresh_from_db()
    return run


def check_drift(ws: Workspace, *, actor: Actor) -> TerraformRun:
    """A drift check now (refresh-only plan), queued like any run."""
    actor.require(SCOPE, ws.owner, "checking this workspace for drift")
    return queue_run(ws, actor=actor, kind=TerraformRun.Kind.DRIFT, message="Drift check")


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


# --- run transitions (people) -------------------------------------------------------------------
def _read_local_state(ws: Workspace):
    from infra.runner import read_local_state

    return read_local_state(ws)


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
    if ws.backend == Workspace.Backend.LOCAL:
        serial, lineage = _read_local_state(ws)
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
    audit.record(actor, action, run, squad=ws.owner, data={"workspace": ws.slug, "reason": reason})
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


def apply_run(run: TerraformRun, *, actor: Actor) -> TerraformRun:
    """Confirm a planned run: exactly its saved plan file will be applied by a worker."""
    actor.require(SCOPE, run.workspace.owner, "applying this workspace")
    stale = ""
    with transaction.atomic():
        ws, run = _locked(run.pk)
        if run.status != RunStatus.PLANNED:
            raise Conflict(
                f"Run #{run.number} is {run.status}; only a run awaiting confirmation (planned) "
                "can be applied.",
                state=run.status,
            )
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
            audit.record(actor, "infra.run.apply", run, squad=ws.owner, data={"workspace": ws.slug})
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
        if run.status != RunStatus.PLANNED:
            raise Conflict(
                f"Run #{run.number} is {run.status}; only a planned run can be discarded "
                "(cancel a pending or running one).",
                state=run.status,
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
        audit.record(actor, "infra.run.cancel", run, squad=ws.owner, data={"workspace": ws.slug})
    run.refresh_from_db()
    return run


def force_unlock(ws: Workspace, *, actor: Actor) -> TerraformRun | None:
    """Admins only. A running holder is marked errored (its worker stops at its next check)."""
    actor.require_admin("force-unlock a workspace")
    with transaction.atomic():
        ws = Workspace.objects.select_for_update().get(pk=ws.pk)
        if ws.lock_run_id is None:
            raise Conflict("The workspace is not locked.", state="unlocked")
        holder = TerraformRun.objects.select_for_update().get(pk=ws.lock_run_id)
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
        audit.record(
            actor,
            "infra.workspace.force_unlock",
            ws,
            squad=ws.owner,
            data={"run": holder.pk, "number": holder.number, "run_status": before},
        )
        _dispatch_next(ws)
    return holder


# --- worker transitions: each one writes its audit event and emits ``infra.run.<what>`` -------
def _worker():
    from portal.actors import Actor

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
        audit.record(actor, event, run, squad=ws.owner, data=payload)
    emit(event, ws.owner, payload)


def claim(run_id, phase: str, worker: str) -> bool:
    """pending → planning (phase "plan") or confirmed → applying ("apply") for the lock
    holder, with a conditional UPDATE (a duplicate delivery claims nothing)."""
    now = timezone.now()
    runs = TerraformRun.objects.filter(pk=run_id, workspace__lock_run_id=run_id)
    with transaction.atomic():
        if phase == "plan":
            claimed = runs.filter(status=RunStatus.PENDING).update(
                status=RunStatus.PLANNING, plan_started_at=now, heartbeat_at=now, worker=worker
            )
        else:
            claimed = runs.filter(status=RunStatus.CONFIRMED).update(
                status=RunStatus.APPLYING, apply_started_at=now, heartbeat_at=now, worker=worker
            )
        if claimed:
            run = TerraformRun.objects.select_related("workspace__owner").get(pk=run_id)
            _announce(run.workspace, run, run.status, actor=_worker(), worker=worker)
    return bool(claimed)


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
    """planned → confirmed for auto-apply runs (the worker applies right after)."""
    from portal.actors import Actor

    with transaction.atomic():
        ws, run = _locked(run_id)
        if run.status != RunStatus.PLANNED or ws.lock_run_id != run.pk:
            return False
        run.status = RunStatus.CONFIRMED
        run.confirmed_at = timezone.now()
        run.confirmed_by = "auto-apply"
        run.save(update_fields=["status", "confirmed_at", "confirmed_by"])
        audit.record(
            Actor.system("auto-apply", door="worker"),
            "infra.run.apply",
            run,
            squad=ws.owner,
            data={"workspace": ws.slug, "auto_apply": True},
        )
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


def record_drift(run: TerraformRun, status: str, drift: list):
    from portal import events
    from portal.actors import Actor

    ws = run.workspace
    previous = ws.drift_status
    Workspace.objects.filter(pk=ws.pk).update(
        drift_status=status, drift_checked_at=timezone.now(), drift_summary=drift, drift_run=run
    )
    if status == DriftStatus.DRIFTED and previous != DriftStatus.DRIFTED:
        with transaction.atomic():
            audit.record(
                Actor.system("drift-check", door="worker"),
                "infra.workspace.drifted",
                ws,
                squad=ws.owner,
                data={"run": run.pk, "drift": [d["address"] for d in drift][:50]},
            )
            events.emit(
                "infra.drift_detected",
                ws.owner,
                {
                    "workspace": ws.slug,
                    "run": run.pk,
                    "addresses": [d["address"] for d in drift][:50],
                },
            )


# --- beat: reaper and drift schedule ------------------------------------------------------------
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
    from portal.actors import Actor

    actor = Actor.system("reaper", door="beat")
    _announce(ws, run, "lost", actor=actor, phase=phase, silent_seconds=silent)
    _release(ws, run)


def _requeue(run_id):
    from infra import tasks

    status = TerraformRun.objects.values_list("status", flat=True).get(pk=run_id)
    task = tasks.plan_run if status == RunStatus.PENDING else tasks.apply_run
    transaction.on_commit(lambda: task.delay(run_id))


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


def schedule_drift_checks(now=None) -> list[int]:
    """Queue a refresh-only drift check for each workspace whose check is due."""
    from portal.actors import Actor

    now = now or timezone.now()
    actor = Actor.system("drift-check", door="beat")
    queued = []
    candidates = Workspace.objects.filter(drift_checks=True, state_serial__isnull=False)
    for ws in candidates:
        if ws.drift_checked_at and ws.drift_checked_at > now - timedelta(
            minutes=ws.drift_interval_minutes
        ):
            continue
        if TerraformRun.objects.filter(
            workspace=ws,
            kind=TerraformRun.Kind.DRIFT,
            status__in=[RunStatus.PENDING, RunStatus.PLANNING],
        ).exists():
            continue
        run = queue_run(
            ws, actor=actor, kind=TerraformRun.Kind.DRIFT, message="Scheduled drift check"
        )
        queued.append(run.pk)
    return queued


# --- reading ------------------------------------------------------------------------------------
def read_log(run: TerraformRun, offset=0, limit=256 * 1024):
    """(text, next_offset) of the run's log from byte ``offset``, at most about ``limit``."""
    return joblog.read(LogChunk, run.pk, offset, limit=limit)


def log_page(run: TerraformRun, offset, *, limit):
    """The log answer (``portal.joblog.page``) of a run; ``run`` read just before."""
    return joblog.page(run, offset, limit=limit)
