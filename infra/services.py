"""Domain operations for Terraform workspaces and runs: one function per state change.

Locking order, everywhere: the workspace row first, then the run row. The workspace's
``lock_run`` is the one active run allowed to use it; later runs wait (``pending``) in order of
creation and are dispatched when the lock is released.
"""

import json
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
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
    RunStatus,
    TerraformRun,
    Variable,
    Workspace,
)
from portal import audit
from portal.api.errors import Conflict

SCOPE = "infra:apply"
RESERVED_SLUGS = {"new", "board", "runs"}


# --- workspaces and variables ------------------------------------------------------------------
def validate_files(files):
    if not isinstance(files, dict):
        raise ValidationError({"files": "must be an object of {filename: content}"})
    for name, content in files.items():
        if not FILENAME_RE.match(str(name)):
            raise ValidationError(
                {
                    "files": f"{name!r} is not an allowed file name (letters, digits, ._-; ending .tf, .tf.json or .tfvars)"
                }
            )
        if not isinstance(content, str):
            raise ValidationError({"files": f"the content of {name!r} must be text"})
    if sum(len(c) for c in files.values()) > 2 * 2**20:
        raise ValidationError({"files": "the stored configuration is limited to 2 MiB"})


def _validate_workspace(ws: Workspace):
    if ws.source == Workspace.Source.STORED:
        validate_files(ws.files)
    else:
        from pipelines.source import valid_ref

        if not ws.repository_url.strip():
            raise ValidationError({"repository_url": "a git workspace needs a repository URL"})
        if ws.repository_url.strip().startswith("-"):
            raise ValidationError({"repository_url": "not a repository URL"})
        if not valid_ref(ws.ref or ""):
            raise ValidationError({"ref": f"{ws.ref!r} is not a valid branch or tag name"})
        parts = [p for p in (ws.path or "").split("/") if p]
        if ws.path.startswith("/") or ".." in parts:
            raise ValidationError({"path": "must be a relative path inside the repository"})


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


def _require_admin_for_sandbox_fields(actor, ws, fields):
    """Where state lives and whether provisioners run are the installation's business: a
    backend from the code (which could name another workspace's state) and local-exec /
    remote-exec provisioners are org admin decisions."""
    backend = fields.get("backend")
    if backend and backend != Workspace.Backend.LOCAL and (ws is None or ws.backend != backend):
        actor.require_admin("let a workspace's code configure its Terraform backend")
    allow = fields.get("allow_provisioners")
    if allow is not None and allow != (ws.allow_provisioners if ws is not None else False):
        actor.require_admin("allow local-exec/remote-exec provisioners for a workspace")


def create_workspace(actor, *, slug, owner, services=(), **fields) -> Workspace:
    actor.require(SCOPE, owner, "creating a Terraform workspace for this squad")
    if slug in RESERVED_SLUGS:
        raise ValidationError({"slug": f"{slug!r} is reserved; choose another slug"})
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
        raise ValidationError({"slug": f"a workspace with slug {slug!r} already exists"}) from exc
    return ws


def update_workspace(actor, ws: Workspace, *, services=None, owner=None, **fields) -> Workspace:
    actor.require(SCOPE, ws.owner, "changing this workspace")
    if owner is not None and owner != ws.owner:
        actor.require(SCOPE, owner, "moving the workspace to that squad")
    if fields.get("terraform_bin"):
        actor.require_admin("choose the terraform binary of a workspace")
    _require_admin_for_sandbox_fields(actor, ws, fields)
    with transaction.atomic():
        ws = Workspace.objects.select_for_update().get(pk=ws.pk)
        changed = []
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
    actor, ws: Workspace, *, key, value, category="terraform", sensitive=False, description=""
) -> Variable:
    actor.require(SCOPE, ws.owner, "changing this workspace's variables")
    key = (key or "").strip()
    if category not in Variable.Category.values:
        raise ValidationError({"category": f"must be one of {', '.join(Variable.Category.values)}"})
    pattern = ENV_KEY_RE if category == "env" else VAR_KEY_RE
    if not pattern.match(key):
        raise ValidationError({"key": f"{key!r} is not a valid {category} variable name"})
    if category == "env" and (key in RESERVED_ENV or key.startswith("TF_VAR_")):
        raise ValidationError(
            {"key": f"{key} is set by Backline (use a Terraform variable for TF_VAR_*)"}
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
            raise ValidationError(
                {"sensitive": f"{key} is sensitive; a sensitive variable cannot be made plain"}
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


def delete_variable(actor, var: Variable):
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
    actor, ws: Workspace, *, message="", kind=TerraformRun.Kind.PLAN, auto_apply=None
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


def check_drift(actor, ws: Workspace) -> TerraformRun:
    """A drift check now (refresh-only plan), queued like any run."""
    actor.require(SCOPE, ws.owner, "checking this workspace for drift")
    return queue_run(actor, ws, kind=TerraformRun.Kind.DRIFT, message="Drift check")


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
        what = {
            RunStatus.PLANNED: "awaiting confirmation",
            RunStatus.PLANNING: "planning",
            RunStatus.APPLYING: "applying",
            RunStatus.CONFIRMED: "confirmed, about to apply",
            RunStatus.PENDING: "waiting for a worker",
        }.get(holder.status, holder.status)
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
    _release(ws, run)


def apply(actor, run: TerraformRun) -> TerraformRun:
    """Confirm a planned run: exactly its saved plan file will be applied by a worker."""
    actor.require(SCOPE, run.workspace.owner, "applying this workspace")
    stale = ""
    with transaction.atomic():
        ws, run = _locked(run.pk)
        if run.status != RunStatus.PLANNED:
            raise Conflict(
                f"Run #{run.number} is {run.status}; only a run awaiting confirmation (planned) "
                "can be applied.",
                current=run.status,
            )
        if ws.lock_run_id not in (None, run.pk):
            holder = TerraformRun.objects.get(pk=ws.lock_run_id)
            raise Conflict(
                f"The workspace is locked by run #{holder.number} ({holder.status}).",
                current=run.status,
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
            current=RunStatus.DISCARDED,
        )
    run.refresh_from_db()
    return run


def discard(actor, run: TerraformRun, reason="") -> TerraformRun:
    actor.require(SCOPE, run.workspace.owner, "discarding this run")
    with transaction.atomic():
        ws, run = _locked(run.pk)
        if run.status != RunStatus.PLANNED:
            raise Conflict(
                f"Run #{run.number} is {run.status}; only a planned run can be discarded "
                "(cancel a pending or running one).",
                current=run.status,
            )
        _discard(ws, run, actor, reason or f"Discarded by {actor.label}.", "infra.run.discard")
    run.refresh_from_db()
    return run


def cancel(actor, run: TerraformRun) -> TerraformRun:
    """Pending/confirmed: canceled at once. Planning/applying: the worker interrupts terraform,
    then kills its process group, and marks the run canceled."""
    actor.require(SCOPE, run.workspace.owner, "canceling this run")
    with transaction.atomic():
        ws, run = _locked(run.pk)
        if run.status in (RunStatus.PENDING, RunStatus.CONFIRMED):
            run.status = RunStatus.CANCELED
            run.finished_at = timezone.now()
            run.save(update_fields=["status", "finished_at"])
            _release(ws, run)
        elif run.status in EXECUTING:
            run.cancel_requested = True
            run.save(update_fields=["cancel_requested"])
        else:
            raise Conflict(
                f"Run #{run.number} is {run.status} and cannot be canceled"
                + (" (discard it instead)." if run.status == RunStatus.PLANNED else "."),
                current=run.status,
            )
        audit.record(actor, "infra.run.cancel", run, squad=ws.owner, data={"workspace": ws.slug})
    run.refresh_from_db()
    return run


def force_unlock(actor, ws: Workspace) -> TerraformRun | None:
    """Admins only. A running holder is marked errored (its worker stops at its next check)."""
    actor.require_admin("force-unlock a workspace")
    with transaction.atomic():
        ws = Workspace.objects.select_for_update().get(pk=ws.pk)
        if ws.lock_run_id is None:
            raise Conflict("The workspace is not locked.", current="unlocked")
        holder = TerraformRun.objects.select_for_update().get(pk=ws.lock_run_id)
        before = holder.status
        if holder.status in EXECUTING:
            holder.status = RunStatus.ERRORED
            holder.error = f"Force-unlocked by {actor.label} while {before}."
            holder.cancel_requested = True
            holder.finished_at = timezone.now()
            holder.save(update_fields=["status", "error", "cancel_requested", "finished_at"])
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


# --- run transitions (worker) -------------------------------------------------------------------
def claim(run_id, phase: str, worker: str) -> bool:
    now = timezone.now()
    if phase == "plan":
        return bool(
            TerraformRun.objects.filter(
                pk=run_id, status=RunStatus.PENDING, workspace__lock_run_id=run_id
            ).update(
                status=RunStatus.PLANNING, plan_started_at=now, heartbeat_at=now, worker=worker
            )
        )
    return bool(
        TerraformRun.objects.filter(
            pk=run_id, status=RunStatus.CONFIRMED, workspace__lock_run_id=run_id
        ).update(status=RunStatus.APPLYING, apply_started_at=now, heartbeat_at=now, worker=worker)
    )


def finish(run_id, expected, status, *, actor=None, **fields) -> bool:
    """Move a run from ``expected`` to ``status`` (conditional); release the lock when over."""
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
        if status in TERMINAL:
            if status == RunStatus.ERRORED and actor is not None:
                audit.record(
                    actor,
                    "infra.run.errored",
                    run,
                    squad=ws.owner,
                    data={"workspace": ws.slug, "error": run.error[:500]},
                )
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
def reap_lost_runs(stale_seconds=None) -> int:
    """Runs whose worker stopped heartbeating become errored (lost) and release the lock; lock
    holders whose task never started are enqueued again."""
    from portal.actors import Actor

    stale = stale_seconds if stale_seconds is not None else settings.HEARTBEAT_STALE_SECONDS
    cutoff = timezone.now() - timedelta(seconds=stale)
    actor = Actor.system("reaper", door="beat")
    lost = 0
    for run_id in TerraformRun.objects.filter(
        status__in=EXECUTING, heartbeat_at__lt=cutoff
    ).values_list("pk", flat=True):
        with transaction.atomic():
            ws, run = _locked(run_id)
            if run.status not in EXECUTING or run.heartbeat_at >= cutoff:
                continue
            phase = run.status
            run.status = RunStatus.ERRORED
            run.lost = True
            run.error = (
                f"Lost: the worker {run.worker or ''} stopped sending heartbeats while "
                f"{phase} (last at {run.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC). The lock was "
                "released; check the state before planning again."
            )
            run.finished_at = timezone.now()
            run.save(update_fields=["status", "lost", "error", "finished_at"])
            audit.record(actor, "infra.run.lost", run, squad=ws.owner, data={"workspace": ws.slug})
            _release(ws, run)
            lost += 1
    # Tasks lost before they started (broker flushed, worker died before ack): enqueue again,
    # at most every few minutes (a claimed task makes the duplicates no-ops).
    requeue_cutoff = timezone.now() - timedelta(seconds=max(4 * stale, 120))
    for run in TerraformRun.objects.filter(
        status__in=[RunStatus.PENDING, RunStatus.CONFIRMED],
        workspace__lock_run_id=F("pk"),
        enqueued_at__lt=requeue_cutoff,
    ):
        with transaction.atomic():
            _enqueue(run, "plan" if run.status == RunStatus.PENDING else "apply")
    return lost


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
        run = queue_run(actor, ws, kind=TerraformRun.Kind.DRIFT, message="Scheduled drift check")
        queued.append(run.pk)
    return queued


# --- reading ------------------------------------------------------------------------------------
def read_log(run: TerraformRun, offset=0, limit=256 * 1024):
    """(text, next_offset) of the run's log from byte ``offset``, at most about ``limit``."""
    from infra.models import LogChunk

    offset = max(0, int(offset))
    first = (
        LogChunk.objects.filter(run=run, offset__lte=offset)
        .order_by("-offset")
        .values_list("offset", flat=True)
        .first()
    )
    qs = LogChunk.objects.filter(run=run, offset__gte=offset if first is None else first)
    parts, size, pos = [], 0, offset
    for chunk in qs.order_by("offset").iterator():
        if chunk.offset + chunk.size <= offset:
            continue
        data = chunk.text.encode()
        if chunk.offset < offset:
            data = data[offset - chunk.offset :]
        parts.append(data)
        pos = chunk.offset + chunk.size
        size += len(data)
        if size >= limit:
            break
    return b"".join(parts).decode(errors="replace"), pos
