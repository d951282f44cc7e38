"""``approval:`` steps: a run waits for a member of the owning squad (or a named squad) to
approve or reject it, in the UI or ``POST /api/v1/runs/<id>/approve`` / ``.../reject``.

In ``backline.yml``::

    - name: production gate
      approval: {squad: platform}      # or approval: {} for the service's owning squad
      timeout: 4h                      # no decision by then: the step times out

The step holds its worker process while it waits (it polls the decision, heartbeats and
honours a cancel of the run like any step). Each decision is audited
(``pipeline.approval.approved`` / ``.rejected``); a squad the spec names that does not exist
fails the run before any step runs (and is refused when the spec is saved in the portal).
"""

import time
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from pipelines.models import Approval, PipelineRun, RunStatus
from pipelines.spec import SpecError
from portal.actors import Actor
from portal.audit import record
from portal.errors import Conflict
from portal.executor import ExecResult
from squads.models import Squad

POLL_SECONDS = 0.5


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


def _result(code, started, *, canceled=False, timed_out=False):
    # ExecResult(exit_code, timed_out, canceled, truncated, duration, output_bytes)
    return ExecResult(code, timed_out, canceled, False, time.monotonic() - started, 0)


def run_approval_step(
    run, step, step_spec, *, on_output, should_cancel, on_heartbeat, heartbeat_every=5.0
):
    """Ask, then wait for the decision (approved: exit 0; rejected: exit 1), a cancel or the
    step's timeout."""
    started = time.monotonic()
    squad = _squad(run, step_spec)
    deadline = timezone.now() + timedelta(seconds=step.timeout) if step.timeout else None
    approval = Approval.objects.create(run=run, step=step, squad=squad, deadline=deadline)
    until = f" until {deadline:%Y-%m-%d %H:%M} UTC" if deadline else ""
    on_output(
        f"⏸ waiting for a member of {squad.name} to approve or reject{until} "
        f"({run.get_absolute_url()})\n"
    )
    last_beat = time.monotonic()
    while True:
        status = Approval.objects.values_list("status", flat=True).get(pk=approval.pk)
        if status != Approval.Status.PENDING:
            a = Approval.objects.get(pk=approval.pk)
            note = f": {a.comment}" if a.comment else ""
            on_output(f"{'✔' if status == 'approved' else '✖'} {status} by {a.decided_by}{note}\n")
            return _result(0 if status == Approval.Status.APPROVED else 1, started)
        cancel = should_cancel()
        timed_out = bool(step.timeout and time.monotonic() - started > step.timeout)
        if cancel or timed_out:
            final = Approval.Status.CANCELED if cancel else Approval.Status.TIMED_OUT
            Approval.objects.filter(pk=approval.pk, status=Approval.Status.PENDING).update(
                status=final, decided_at=timezone.now()
            )
            return _result(None, started, canceled=cancel, timed_out=timed_out)
        if time.monotonic() - last_beat >= heartbeat_every:
            on_heartbeat()
            last_beat = time.monotonic()
        time.sleep(POLL_SECONDS)


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
        if run.status != RunStatus.RUNNING:
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
    return a
