"""Pipeline domain operations: one function per state change, called by every door.

Each takes the row lock, checks the transition is legal, writes the audit event, and enqueues
work with ``transaction.on_commit`` (tasks take ids).
"""

from __future__ import annotations

import shutil

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from pipelines import approvals
from pipelines.approvals import check_squads
from pipelines.github import checks
from pipelines.logs import log_page, read_log, step_log_page
from pipelines.models import (
    ACTIVE_STATUSES,
    PipelineConfig,
    PipelineRun,
    PipelineSecret,
    RunStatus,
    StepRun,
    run_workdir,
)
from pipelines.spec import ENV_NAME_RE, SpecError, parse
from portal import limits, metrics
from portal.actors import Actor
from portal.audit import record
from portal.celery import enqueue
from portal.errors import Conflict, Invalid
from portal.events import emit
from portal.gitsource import valid_ref, valid_sha
from portal.joblog import append_notice
from portal.jobs import reap_stale, requeue_waiting
from portal.principal import started_by
from squads.models import Service

EXECUTE_TASK = "pipelines.tasks.execute_run"  # by name: pipelines.tasks imports this module


def _enqueue(run_id):
    transaction.on_commit(lambda: enqueue(EXECUTE_TASK, run_id))


def _count(run):
    """Backline's own metrics (portal.metrics): finished runs by status, and their duration."""
    metrics.PIPELINE_RUNS.labels(status=run.status).inc()
    if run.started_at and run.finished_at:
        metrics.PIPELINE_DURATION.observe((run.finished_at - run.started_at).total_seconds())


WORKER = Actor.system("pipelines.worker", door="worker")
REAPER = Actor.system("pipelines.reaper", door="beat")


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
    ref, commit = _checked_ref(service, ref, commit)
    existing = _known_delivery(service, delivery_id, idempotency_key)
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            run = _create_run(
                service,
                actor=actor,
                ref=ref,
                commit=commit,
                trigger=trigger,
                delivery_id=delivery_id,
                idempotency_key=idempotency_key,
                commit_message=commit_message,
                commit_author=commit_author,
                rerun_of=rerun_of,
                action=action,
            )
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


def _checked_ref(service: Service, ref: str, commit: str) -> tuple[str, str]:
    """``(ref, commit)`` normalised (branch name, default branch); Invalid naming the field."""
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
    return ref, commit


def _known_delivery(
    service: Service, delivery_id: str | None, idempotency_key: str | None
) -> PipelineRun | None:
    """The run an earlier delivery / request with the same id or key already queued."""
    for field, value in (("delivery_id", delivery_id), ("idempotency_key", idempotency_key)):
        if value:
            existing = PipelineRun.objects.filter(service=service, **{field: value}).first()
            if existing is not None:
                return existing
    return None


def _create_run(
    service: Service,
    *,
    actor: Actor,
    ref: str,
    commit: str,
    trigger: str,
    delivery_id: str | None,
    idempotency_key: str | None,
    commit_message: str,
    commit_author: str,
    rerun_of: PipelineRun | None,
    action: str,
) -> PipelineRun:
    """Number and create the run under the service's row lock, audit it, enqueue it."""
    Service.objects.select_for_update(no_key=True).only("pk").get(pk=service.pk)
    number = (PipelineRun.objects.filter(service=service).aggregate(n=Max("number"))["n"] or 0) + 1
    run = PipelineRun.objects.create(
        service=service,
        number=number,
        ref=ref,
        requested_commit=commit,
        commit_message=commit_message[:5000],
        commit_author=commit_author[:200],
        trigger=trigger,
        triggered_by=actor.label[:200],
        **started_by(actor),
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
    _announce(run, "queued", trigger=trigger)
    _enqueue(run.pk)
    return run


def allowed_actions(run: PipelineRun, actor: Actor) -> set[str]:
    """What ``actor`` may do next with ``run`` (the rules ``cancel_run`` / ``rerun_run`` apply)."""
    if not actor.can("pipelines:run", run.service.owner):
        return set()
    return {"cancel"} if run.status in ACTIVE_STATUSES else {"rerun"}


def cancel_run(run: PipelineRun, *, actor: Actor) -> PipelineRun:
    """Cancel a queued run at once; ask the worker to stop a running one (TERM, grace, KILL)."""
    actor.require("pipelines:run", run.service.owner, "canceling a pipeline run")
    with transaction.atomic():
        run = (
            PipelineRun.objects.select_for_update(no_key=True)
            .select_related("service")
            .get(pk=run.pk)
        )
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
            _announce(run, RunStatus.CANCELED, by=actor.label)
            _count(run)
        else:
            if run.cancel_requested:
                return run
            run.cancel_requested = True
            run.error = f"Canceled by {actor.label}."
            run.save(update_fields=["cancel_requested", "error"])
            approvals.cancel_waiting(run)  # parked at an approval: resumed, to end
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
    limits.check_value("pipelines.PipelineConfig", "spec_yaml", text, name="spec")  # before parsing
    spec = None
    if text.strip():
        try:
            spec = parse(text)
            check_squads(spec)
        except SpecError as exc:
            raise Invalid(errors={"spec": [str(exc)]}) from None
    with transaction.atomic():
        config, _ = PipelineConfig.objects.select_for_update(no_key=True).get_or_create(
            service=service
        )
        config.spec_yaml = text
        config.updated_by = actor.label[:200]
        if spec is not None:
            config.known_branches = spec.data.get("branches")
            config.known_schedules = spec.data.get("schedules")
        config.save()
        record(actor, "pipeline.spec.save", service, squad=service.owner, data={"bytes": len(text)})
    return config


def set_secret(service: Service, *, actor: Actor, name: str, value: str) -> PipelineSecret:
    actor.require("pipelines:run", service.owner, "setting a pipeline secret")
    name = (name or "").strip()
    if not ENV_NAME_RE.match(name) or len(name) > 100:
        raise Invalid(
            errors={
                "name": [
                    f"{name[:100]!r} is not a valid name (letters, digits, _; not first a digit;"
                    " at most 100 characters)."
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


# --- worker transitions: each one writes its audit event and emits ``pipeline.run.<what>`` ---
# the outbound event of each run transition (registered in pipelines/apps.py)
RUN_EVENTS = {
    "queued": "pipeline.run.queued",
    "started": "pipeline.run.started",
    "succeeded": "pipeline.run.succeeded",
    "failed": "pipeline.run.failed",
    "canceled": "pipeline.run.canceled",
    "timed_out": "pipeline.run.timed_out",
    "lost": "pipeline.run.lost",
}


def _announce(run, what, *, actor=None, **extra):
    """Emit ``pipeline.run.<what>``; with ``actor``, record the audit event of the same name (a
    person's action records its own audit event and passes no actor)."""
    payload = {
        "run": run.pk,
        "number": run.number,
        "service": run.service.slug,
        "status": run.status,
        "ref": run.ref,
        "commit": run.commit_sha or run.requested_commit,
        **extra,
    }
    squad = run.service.owner
    event = RUN_EVENTS[str(what)]
    if actor is not None:
        record(actor, event, run, squad=squad, data=payload)
    emit(event, squad, payload)
    checks.schedule_sync(run.pk)  # issue 18: the run's GitHub check run follows it


def start_run(run_id, *, worker: str):
    """queued → running, claimed by ``worker`` with a conditional UPDATE (a duplicate delivery
    claims nothing and gets None). Emits ``pipeline.run.started``."""
    now = timezone.now()
    with transaction.atomic():
        claimed = PipelineRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
            status=RunStatus.RUNNING, started_at=now, heartbeat_at=now, worker=worker
        )
        if not claimed:
            return None
        run = PipelineRun.objects.select_related("service", "service__owner").get(pk=run_id)
        _announce(run, "started", actor=WORKER, worker=worker)
    return run


def finish_run(run_id, status, error="") -> bool:
    """running → ``status`` (succeeded, failed, canceled, timed_out); steps still queued are
    canceled. Conditional: False when the run already left ``running`` (lost, canceled
    elsewhere). Emits ``pipeline.run.<status>``."""
    fields = {"status": status, "finished_at": timezone.now()}
    if error:
        fields["error"] = error[:5000]
    with transaction.atomic():
        done = PipelineRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(**fields)
        StepRun.objects.filter(run_id=run_id, status=RunStatus.QUEUED).update(
            status=RunStatus.CANCELED
        )
        if done:
            run = PipelineRun.objects.select_related("service", "service__owner").get(pk=run_id)
            _announce(run, run.status, actor=WORKER, error=run.error[:500])
            _count(run)
    return bool(done)


def _mark_lost(run, silent):
    now = timezone.now()
    run.status = RunStatus.LOST
    run.finished_at = now
    run.error = (
        f"The worker {run.worker or ''} stopped sending heartbeats "
        f"({silent:.0f}s without one); the run was marked lost. Re-run it."
    ).replace("  ", " ")
    append_notice(run, f"\n[backline] {run.error}\n")
    run.save(update_fields=["status", "finished_at", "error", "log_size"])
    run.steps.filter(status=RunStatus.RUNNING).update(
        status=RunStatus.LOST, finished_at=now, log_end=run.log_size
    )
    run.steps.filter(status=RunStatus.QUEUED).update(status=RunStatus.CANCELED)
    _announce(run, "lost", actor=REAPER, worker=run.worker, silent_seconds=silent)
    _count(run)


def reap_lost(stale_seconds=None):
    """Mark running runs whose heartbeat is stale as ``lost``, keeping the log so far."""
    stale = settings.PIPELINES_LOST_AFTER_SECONDS if stale_seconds is None else stale_seconds
    reaped = reap_stale(
        PipelineRun,
        stale_seconds=stale,
        on_lost=_mark_lost,
        lock=lambda pk: (
            PipelineRun.objects.select_for_update(skip_locked=True, of=("self",), no_key=True)
            .select_related("service", "service__owner")
            .filter(pk=pk, jobs__isnull=True)  # a jobs run lives while its jobs do (dag)
            .first()
        ),
    )
    for run_id in reaped:  # the dead worker could not remove its checkout (same machine)
        shutil.rmtree(run_workdir(run_id), ignore_errors=True)
    return reaped


def requeue_stale(after_seconds=None):
    """Send queued runs whose message may have been lost (broker restart) to the broker again,
    once they waited ``after_seconds`` since they were last sent (``heartbeat_at`` of a queued
    run is when it was last sent)."""
    after = settings.PIPELINES_REQUEUE_AFTER_SECONDS if after_seconds is None else after_seconds
    return requeue_waiting(
        PipelineRun.objects.filter(status=RunStatus.QUEUED),
        stamp_field="heartbeat_at",
        older_than=after,
        enqueue=_enqueue,
    )


__all__ = [
    "allowed_actions",
    "trigger_run",
    "cancel_run",
    "rerun_run",
    "save_spec",
    "set_secret",
    "delete_secret",
    "start_run",
    "finish_run",
    "reap_lost",
    "requeue_stale",
    "read_log",
    "log_page",
    "step_log_page",
    "StepRun",
]
