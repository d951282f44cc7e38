"""Pipeline domain operations: one function per state change, called by every door.

Each takes the row lock, checks the transition is legal, writes the audit event, and enqueues
work with ``transaction.on_commit`` (tasks take ids).
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Max
from django.utils import timezone

from pipelines.models import (
    ACTIVE_STATUSES,
    LogChunk,
    PipelineConfig,
    PipelineRun,
    PipelineSecret,
    RunStatus,
    StepRun,
    workspace_root,
)
from pipelines.source import valid_ref, valid_sha
from pipelines.spec import SpecError, parse
from portal.actors import Actor
from portal.audit import record
from portal.errors import Conflict, Invalid
from squads.models import Service


def _enqueue(run_id):
    from pipelines.tasks import execute_run

    transaction.on_commit(lambda: execute_run.delay(run_id))


def _count(run):
    from portal import metrics

    metrics.PIPELINE_RUNS.labels(status=run.status).inc()


def _state(run):
    return {"id": run.pk, "status": run.status}


def trigger_run(
    service: Service,
    *,
    actor: Actor,
    ref: str = "",
    commit: str = "",
    trigger: str = PipelineRun.Trigger.MANUAL,
    delivery_id: str | None = None,
    idempotency_key: str | None = None,
    commit_message: str = "",
    commit_author: str = "",
    rerun_of: PipelineRun | None = None,
    action: str = "pipeline.trigger",
) -> tuple[PipelineRun, bool]:
    """Queue a run of ``service`` at ``ref`` (default branch) or an exact ``commit``.

    Returns ``(run, created)``; a repeated delivery id or idempotency key returns the first run.
    """
    actor.require("pipelines:run", service.owner, "triggering a pipeline")
    ref = (ref or "").strip()
    if ref.startswith("refs/heads/"):
        ref = ref.removeprefix("refs/heads/")
    ref = ref or service.default_branch or "main"
    commit = (commit or "").strip()
    errors: dict[str, list[str]] = {}
    if not valid_ref(ref):
        errors["ref"] = [f"{ref[:100]!r} is not a valid branch or tag name."]
    if commit and not valid_sha(commit):
        errors["commit"] = [f"{commit[:100]!r} is not a commit id (4 to 64 hex digits)."]
    if errors:
        raise Invalid(errors=errors)
    for field, value in (("delivery_id", delivery_id), ("idempotency_key", idempotency_key)):
        if value:
            existing = PipelineRun.objects.filter(service=service, **{field: value}).first()
            if existing is not None:
                return existing, False
    try:
        with transaction.atomic():
            Service.objects.select_for_update().only("pk").get(pk=service.pk)
            number = (
                PipelineRun.objects.filter(service=service).aggregate(n=Max("number"))["n"] or 0
            ) + 1
            run = PipelineRun.objects.create(
                service=service,
                number=number,
                ref=ref,
                requested_commit=commit,
                commit_message=commit_message[:5000],
                commit_author=commit_author[:200],
                trigger=trigger,
                triggered_by=actor.label[:200],
                rerun_of=rerun_of,
                delivery_id=delivery_id or None,
                idempotency_key=idempotency_key or None,
                # while queued, heartbeat_at is when the run was last sent to the broker
                heartbeat_at=timezone.now(),
            )
            record(
                actor,
                action,
                run,
                squad=service.owner,
                data={
                    "service": service.slug,
                    "ref": ref,
                    "commit": commit,
                    "trigger": trigger,
                    **({"rerun_of": rerun_of.pk} if rerun_of else {}),
                    **({"delivery": delivery_id} if delivery_id else {}),
                },
            )
            _enqueue(run.pk)
    except IntegrityError:
        # a concurrent redelivery / retry with the same key won the race
        key: dict[str, str | None] = (
            {"delivery_id": delivery_id} if delivery_id else {"idempotency_key": idempotency_key}
        )
        existing = PipelineRun.objects.filter(service=service, **key).first()
        if existing is None:
            raise
        return existing, False
    return run, True


def allowed_actions(run: PipelineRun, actor: Actor) -> set[str]:
    """What ``actor`` may do next with ``run`` (the rules ``cancel_run`` / ``rerun_run`` apply)."""
    if not actor.can("pipelines:run", run.service.owner):
        return set()
    return {"cancel"} if run.status in ACTIVE_STATUSES else {"rerun"}


def cancel_run(run: PipelineRun, *, actor: Actor) -> PipelineRun:
    """Cancel a queued run at once; ask the worker to stop a running one (TERM, grace, KILL)."""
    actor.require("pipelines:run", run.service.owner, "canceling a pipeline run")
    with transaction.atomic():
        run = PipelineRun.objects.select_for_update().select_related("service").get(pk=run.pk)
        if run.status not in ACTIVE_STATUSES:
            raise Conflict(f"Run #{run.number} is already {run.status}.", state=_state(run))
        now = timezone.now()
        if run.status == RunStatus.QUEUED:
            run.status = RunStatus.CANCELED
            run.finished_at = now
            run.error = f"Canceled by {actor.label} before it started."
            run.cancel_requested = True
            run.save(update_fields=["status", "finished_at", "error", "cancel_requested"])
            run.steps.filter(status__in=ACTIVE_STATUSES).update(status=RunStatus.CANCELED)
            _count(run)
        else:
            if run.cancel_requested:
                return run
            run.cancel_requested = True
            run.error = f"Canceled by {actor.label}."
            run.save(update_fields=["cancel_requested", "error"])
        record(
            actor,
            "pipeline.cancel",
            run,
            squad=run.service.owner,
            data={"service": run.service.slug, "status": run.status},
        )
    return run


def rerun_run(run: PipelineRun, *, actor: Actor, idempotency_key: str | None = None) -> PipelineRun:
    """Start a new run of the same service, ref and commit as a finished one."""
    actor.require("pipelines:run", run.service.owner, "re-running a pipeline")
    if run.status in ACTIVE_STATUSES:
        raise Conflict(
            f"Run #{run.number} is still {run.status}; cancel it or wait for it to finish.",
            state=_state(run),
        )
    new, _created = trigger_run(
        run.service,
        actor=actor,
        ref=run.ref,
        commit=run.commit_sha or run.requested_commit,
        trigger=PipelineRun.Trigger.RERUN,
        idempotency_key=idempotency_key,
        commit_message=run.commit_message,
        commit_author=run.commit_author,
        rerun_of=run,
        action="pipeline.rerun",
    )
    return new


def save_spec(service: Service, *, actor: Actor, text: str) -> PipelineConfig:
    """Store the portal spec (used when the repository has no backline.yml)."""
    actor.require("pipelines:run", service.owner, "editing the pipeline spec")
    text = (text or "").replace("\r\n", "\n")
    spec = None
    if text.strip():
        try:
            spec = parse(text)
        except SpecError as exc:
            raise Invalid(errors={"spec": [str(exc)]}) from None
    with transaction.atomic():
        config, _ = PipelineConfig.objects.select_for_update().get_or_create(service=service)
        config.spec_yaml = text
        config.updated_by = actor.label[:200]
        if spec is not None:
            config.known_branches = spec.data.get("branches")
        config.save()
        record(actor, "pipeline.spec.save", service, squad=service.owner, data={"bytes": len(text)})
    return config


def set_secret(service: Service, *, actor: Actor, name: str, value: str) -> PipelineSecret:
    from pipelines.spec import ENV_NAME_RE

    actor.require("pipelines:run", service.owner, "setting a pipeline secret")
    name = (name or "").strip()
    if not ENV_NAME_RE.match(name):
        raise Invalid(
            errors={
                "name": [
                    f"{name[:100]!r} is not a valid name (letters, digits, _; not first a digit)."
                ]
            }
        )
    if not value:
        raise Invalid(errors={"value": ["The secret value must not be empty."]})
    with transaction.atomic():
        secret, created = PipelineSecret.objects.update_or_create(
            service=service, name=name, defaults={"value": value, "updated_by": actor.label[:200]}
        )
        record(
            actor,
            "pipeline.secret.set",
            service,
            squad=service.owner,
            data={"name": name, "created": created},
        )
    return secret


def delete_secret(service: Service, *, actor: Actor, name: str) -> bool:
    actor.require("pipelines:run", service.owner, "deleting a pipeline secret")
    with transaction.atomic():
        deleted, _ = PipelineSecret.objects.filter(service=service, name=name).delete()
        if deleted:
            record(
                actor, "pipeline.secret.delete", service, squad=service.owner, data={"name": name}
            )
    return bool(deleted)


def reap_lost(stale_seconds=None):
    """Mark running runs whose heartbeat is stale as ``lost``, keeping the log so far."""
    stale = settings.PIPELINES_LOST_AFTER_SECONDS if stale_seconds is None else stale_seconds
    now = timezone.now()
    cutoff = now - timedelta(seconds=stale)
    actor = Actor.system("pipelines.reaper", door="beat")
    reaped = []
    ids = list(
        PipelineRun.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=cutoff).values_list(
            "pk", flat=True
        )
    )
    for run_id in ids:
        with transaction.atomic():
            run = (
                PipelineRun.objects.select_for_update(skip_locked=True)
                .select_related("service")
                .filter(pk=run_id, status=RunStatus.RUNNING, heartbeat_at__lt=cutoff)
                .first()
            )
            if run is None:
                continue
            silent = (now - (run.heartbeat_at or cutoff)).total_seconds()
            run.status = RunStatus.LOST
            run.finished_at = now
            run.error = (
                f"The worker {run.worker or ''} stopped sending heartbeats "
                f"({silent:.0f}s without one); the run was marked lost. Re-run it."
            ).replace("  ", " ")
            notice = f"\n[backline] {run.error}\n"
            size = len(notice.encode())
            # append after the last stored chunk, whatever log_size says
            end = LogChunk.objects.filter(run=run).aggregate(end=Max(F("offset") + F("size")))[
                "end"
            ]
            run.log_size = max(run.log_size, end or 0)
            LogChunk.objects.create(run=run, offset=run.log_size, size=size, text=notice)
            run.log_size += size
            run.save(update_fields=["status", "finished_at", "error", "log_size"])
            run.steps.filter(status=RunStatus.RUNNING).update(
                status=RunStatus.LOST, finished_at=now
            )
            run.steps.filter(status=RunStatus.QUEUED).update(status=RunStatus.CANCELED)
            record(
                actor,
                "pipeline.lost",
                run,
                squad=run.service.owner,
                data={"service": run.service.slug, "worker": run.worker, "silent_seconds": silent},
            )
            reaped.append(run.pk)
            _count(run)
        # the dead worker could not remove its checkout (same machine installs)
        shutil.rmtree(workspace_root() / "runs" / str(run_id), ignore_errors=True)
    return reaped


def requeue_stale(after_seconds=None):
    """Send queued runs whose message may have been lost (broker restart) to the broker again.

    A run is sent again when it has waited ``after_seconds`` since it was last sent; a
    duplicate message is harmless (the worker claims a run with a conditional UPDATE).
    """
    after = settings.PIPELINES_REQUEUE_AFTER_SECONDS if after_seconds is None else after_seconds
    now = timezone.now()
    cutoff = now - timedelta(seconds=after)
    from django.db.models import Q

    ids = list(
        PipelineRun.objects.filter(status=RunStatus.QUEUED)
        .filter(Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True))
        .values_list("pk", flat=True)[:1000]
    )
    if ids:
        PipelineRun.objects.filter(pk__in=ids, status=RunStatus.QUEUED).update(heartbeat_at=now)
        for run_id in ids:
            _enqueue(run_id)
    return ids


# --- reads used by pages and the API -------------------------------------------------------------
def read_log(run, offset=0, limit=None):
    """Log text from byte ``offset``; returns (text, next_offset)."""
    offset = max(0, int(offset or 0))
    chunks = LogChunk.objects.filter(run_id=run.pk, offset__gte=offset).order_by("offset")
    # the chunk containing ``offset`` may start before it
    head = (
        LogChunk.objects.filter(run_id=run.pk, offset__lt=offset)
        .order_by("-offset")
        .only("offset", "size", "text")
        .first()
    )
    parts = []
    end = offset
    if head is not None and head.offset + head.size > offset:
        raw = head.text.encode()[offset - head.offset :]
        parts.append(raw.decode("utf-8", errors="replace"))
        end = head.offset + head.size
    total = sum(len(p.encode()) for p in parts)
    for chunk in chunks.only("offset", "size", "text").iterator(chunk_size=200):
        if limit is not None and total >= limit:
            break
        parts.append(chunk.text)
        total += chunk.size
        end = chunk.offset + chunk.size
    return "".join(parts), end


def log_window_start(run, window):
    """Offset of the first chunk of the last ``window`` bytes of the log (0 for short logs)."""
    if run.log_size <= window:
        return 0
    first = (
        LogChunk.objects.filter(run_id=run.pk, offset__gte=run.log_size - window)
        .order_by("offset")
        .values_list("offset", flat=True)
        .first()
    )
    return first if first is not None else 0


def step_groups(steps):
    """Steps grouped by stage, in order, with a stage status."""
    stages: list[dict[str, Any]] = []
    for step in steps:
        if not stages or stages[-1]["name"] != step.stage:
            stages.append({"name": step.stage, "steps": []})
        stages[-1]["steps"].append(step)
    order = ["lost", "timed_out", "failed", "canceled", "running", "queued", "succeeded"]
    for stage in stages:
        statuses = {s.status for s in stage["steps"]}
        stage["status"] = next((s for s in order if s in statuses), "queued")
        if statuses == {"succeeded"}:
            stage["status"] = "succeeded"
        elif "running" in statuses:
            stage["status"] = "running"
        durations = [s.duration for s in stage["steps"] if s.duration is not None]
        stage["duration"] = sum(durations) if durations else None
    return stages


__all__ = [
    "allowed_actions",
    "trigger_run",
    "cancel_run",
    "rerun_run",
    "save_spec",
    "set_secret",
    "delete_secret",
    "reap_lost",
    "read_log",
    "step_groups",
    "StepRun",
]
