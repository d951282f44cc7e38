"""``approval:`` steps: a run waits for a member of the owning squad (or a named squad) to
approve or reject it, in the UI or ``POST /api/v1/runs/<id>/approve`` / ``.../reject``.

In ``backline.yml``::

    - name: production gate
      approval: {squad: platform}      # or approval: {} for the service's owning squad
      timeout: 4h                      # no decision by then: the step times out

Waiting holds no worker: the step records its :class:`~pipelines.models.Approval`, then the run
(``stages:`` form) or the job (``jobs:`` form) is *parked*, status ``waiting``, with its
workspace kept, and the worker process takes other work. A decision (:func:`decide_approval`),
the deadline passing (beat, :func:`expire_due`, every ``PIPELINES_APPROVAL_SWEEP_SECONDS``) or
a cancel of the run enqueues the continuation (``pipelines.tasks.resume_after_approval``,
``pipelines.resume``), which claims the parked row again and goes on after the step, or ends
it (rejected: failed, naming who; no decision in time: timed out; canceled). Each outcome is
audited (``pipeline.approval.approved`` / ``.rejected`` / ``.timed_out``); a squad the spec
names that does not exist fails the run before any step runs (and is refused when the spec is
saved in the portal).
"""

from datetime import timedelta
from types import SimpleNamespace

from django.db import transaction
from django.utils import timezone

from pipelines.models import Approval, JobRun, PipelineRun, RunStatus, StepRun
from pipelines.spec import SpecError
from portal.actors import Actor
from portal.audit import record
from portal.celery import enqueue
from portal.errors import Conflict
from squads.models import Squad

RESUME_TASK = "pipelines.tasks.resume_after_approval"
STUCK_AFTER = 60.0  # a decided approval whose step still waits this long: send the resume again


def check_squads(spec) -> None:
    """SpecError (line, field) for an approval step naming a squad that does not exist."""
    for _si, _stage, step in spec.steps():
        wanted = (step.get("approval") or {}).get("squad")
        if wanted and not Squad.objects.filter(slug=wanted).exists():
            a = step["approval"]
            raise SpecError(f"unknown squad {wanted!r} for the approval", a["line"], a["field"])


def _squad(run, step_spec):
    slug = (step_spec.get("approval") or {}).get("squad")
    return Squad.objects.get(slug=slug) if slug else run.service.owner


def run_approval_step(run, step, step_spec, *, on_output, **_watch):
    """Ask for the decision and return at once, parked: the caller saves the step as
    ``waiting`` and frees its worker (:func:`park`)."""
    squad = _squad(run, step_spec)
    deadline = timezone.now() + timedelta(seconds=step.timeout) if step.timeout else None
    Approval.objects.create(run=run, step=step, squad=squad, deadline=deadline)
    until = f" until {deadline:%Y-%m-%d %H:%M:%S} UTC" if deadline else ""
    on_output(
        f"⏸ waiting for a member of {squad.name} to approve or reject{until} "
        f"({run.get_absolute_url()}); no worker is held meanwhile\n"
    )
    return SimpleNamespace(parked=True, truncated=False, output_bytes=0, exit_code=None)


def _resume_later(approval_id: int) -> None:
    transaction.on_commit(lambda: enqueue(RESUME_TASK, approval_id))


def park(step, *, holder) -> bool:
    """running → waiting for ``holder`` (the run, or the job in ``jobs:`` form) and its
    approval ``step``, worker released. A decision (or cancel) that came first is acted on at
    once. False when the holder already left ``running`` (lost, canceled elsewhere)."""
    with transaction.atomic():
        run = PipelineRun.objects.select_for_update().get(pk=step.run_id)
        a = Approval.objects.select_for_update().get(step_id=step.pk)
        if run.cancel_requested and a.status == Approval.Status.PENDING:
            a.status, a.decided_at = Approval.Status.CANCELED, timezone.now()
            a.save(update_fields=["status", "decided_at"])
        parked = (
            type(holder)
            .objects.filter(pk=holder.pk, status=RunStatus.RUNNING)
            .update(status=RunStatus.WAITING, worker="")
        )
        if not parked:
            return False
        StepRun.objects.filter(pk=step.pk).update(status=RunStatus.WAITING)
        if a.status != Approval.Status.PENDING:
            _resume_later(a.pk)
    return True


def claim(approval_id: int, *, worker: str):
    """waiting → running for the holder of a decided approval, by ``worker``; the approval
    (its step, run and job loaded), or None: still pending, or resumed already."""
    run_id = Approval.objects.filter(pk=approval_id).values_list("run_id", flat=True).first()
    with transaction.atomic():
        PipelineRun.objects.select_for_update().filter(pk=run_id).first()  # the others' order
        a = (
            Approval.objects.select_for_update(of=("self",))
            .select_related("step", "run", "squad")
            .filter(pk=approval_id)
            .first()
        )
        if a is None or a.status == Approval.Status.PENDING:
            return None
        if a.step.status != RunStatus.WAITING:
            return None
        now = timezone.now()
        model, pk = (JobRun, a.step.job_id) if a.step.job_id else (PipelineRun, a.run_id)
        claimed = model.objects.filter(pk=pk, status=RunStatus.WAITING).update(
            status=RunStatus.RUNNING, worker=worker, heartbeat_at=now
        )
        if not claimed:
            return None
        StepRun.objects.filter(pk=a.step.pk).update(status=RunStatus.RUNNING)
    return a


def outcome(a: Approval) -> tuple[str, str, str]:
    """(step status, log line, run error) of a decided approval."""
    where = f"{a.step.stage}/{a.step.name}"
    note = f": {a.comment}" if a.comment else ""
    if a.status == Approval.Status.APPROVED:
        return RunStatus.SUCCEEDED, f"\x1b[32m✔ approved by {a.decided_by}{note}\x1b[0m\n", ""
    if a.status == Approval.Status.REJECTED:
        error = f"Step {where} failed: rejected by {a.decided_by}{note}."
        return RunStatus.FAILED, f"\x1b[31m✖ rejected by {a.decided_by}{note}\x1b[0m\n", error
    if a.status == Approval.Status.TIMED_OUT:
        error = (
            f"Step {where} timed out: nobody approved or rejected it within {a.step.timeout:g}s."
        )
        return RunStatus.TIMED_OUT, f"\x1b[31m✖ {error}\x1b[0m\n", error
    return RunStatus.CANCELED, "\x1b[33m■ canceled while waiting for approval\x1b[0m\n", ""


def cancel_waiting(run) -> None:
    """The run is being canceled (its row lock held): its pending approvals are canceled and
    their parked holders resumed, to end."""
    for a in Approval.objects.select_for_update().filter(run=run, status=Approval.Status.PENDING):
        a.status, a.decided_at = Approval.Status.CANCELED, timezone.now()
        a.save(update_fields=["status", "decided_at"])
        _resume_later(a.pk)


def expire_due(now=None) -> list[int]:
    """Beat: pending approvals past their deadline time out (audited) and their runs resume
    to end; decided approvals whose resume was lost (broker restart) are sent again."""
    now = now or timezone.now()
    expired = []
    due = Approval.objects.filter(status=Approval.Status.PENDING, deadline__lte=now)
    for pk, run_id in due.values_list("pk", "run_id"):
        with transaction.atomic():
            PipelineRun.objects.select_for_update().filter(pk=run_id).first()
            a = Approval.objects.select_for_update().select_related("run", "squad", "step")
            a = a.filter(pk=pk, status=Approval.Status.PENDING).first()
            if a is None:
                continue
            a.status, a.decided_at, a.decided_by = Approval.Status.TIMED_OUT, now, "timeout"
            a.save(update_fields=["status", "decided_at", "decided_by"])
            record(
                Actor.system("approval timeout"),
                "pipeline.approval.timed_out",
                a.run,
                squad=a.squad,
                data={"service": a.run.service.slug, "step": a.step.name},
            )
            _resume_later(a.pk)
            expired.append(a.pk)
    stuck = Approval.objects.filter(step__status=RunStatus.WAITING).exclude(
        status=Approval.Status.PENDING
    )
    for pk in stuck.filter(decided_at__lt=now - timedelta(seconds=STUCK_AFTER)).values_list(
        "pk", flat=True
    ):
        enqueue(RESUME_TASK, pk)
    return expired


def pending(run):
    return list(
        Approval.objects.filter(run=run, status=Approval.Status.PENDING).select_related(
            "squad", "step"
        )
    )


def decide_approval(
    run: PipelineRun, *, actor: Actor, approve: bool, step: int | None = None, comment: str = ""
) -> Approval:
    """Approve or reject the run's pending approval (``step``: its index, when several jobs
    wait at once). Members of the approval's squad and org admins only; audited."""
    verb = "approving" if approve else "rejecting"
    with transaction.atomic():
        run = PipelineRun.objects.select_for_update().select_related("service").get(pk=run.pk)
        waiting = Approval.objects.select_for_update().filter(
            run=run, status=Approval.Status.PENDING
        )
        if step is not None:
            waiting = waiting.filter(step__index=step)
        rows = list(waiting.select_related("squad", "step"))
        if not rows:
            raise Conflict(
                f"Run #{run.number} is not waiting for an approval"
                + (f" at step {step}." if step is not None else "."),
                state={"id": run.pk, "status": run.status},
            )
        if len(rows) > 1:
            steps = ", ".join(f"{a.step.index} ({a.step.stage}/{a.step.name})" for a in rows)
            raise Conflict(
                f"Run #{run.number} waits for {len(rows)} approvals; name the step: {steps}."
            )
        a = rows[0]
        actor.require("pipelines:run", a.squad, f"{verb} {a.step.stage}/{a.step.name}")
        if run.status not in (RunStatus.RUNNING, RunStatus.WAITING):
            raise Conflict(f"Run #{run.number} is already {run.status}.")
        a.status = Approval.Status.APPROVED if approve else Approval.Status.REJECTED
        a.decided_by, a.decided_at, a.comment = actor.label[:200], timezone.now(), comment[:500]
        a.save(update_fields=["status", "decided_by", "decided_at", "comment"])
        record(
            actor,
            f"pipeline.approval.{a.status}",
            run,
            squad=a.squad,
            data={"service": run.service.slug, "step": a.step.name, "comment": a.comment},
        )
        _resume_later(a.pk)  # parked already: it goes on; still parking: park() sees it
    return a
