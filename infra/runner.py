"""Worker side of a Terraform run: claim, then each phase of a plan or an apply, then finish.

How terraform is called (working directory, environment, log, sandbox) is ``infra.tfjob``;
its names used by callers and tests (paths, ``build_env``, ``json_document``...) are named here too.
"""

import logging
import os
import socket

from infra import services, tfsandbox
from infra.models import DriftStatus, RunStatus, TerraformRun
from infra.planparse import SENSITIVE, PlanParseError, parse_plan, plan_line, show
from infra.tfjob import (
    Interrupted,
    Job,
    JsonLines,
    RunError,
    RunLog,
    build_env,
    cancel_grace,
    format_diagnostic,
    json_document,
    plan_file,
    read_local_state,
    resolve_binary,
    run_dir,
    run_timeout,
    state_path,
    ws_root,
)
from portal.actors import Actor

log = logging.getLogger(__name__)


def worker_name():
    return f"{socket.gethostname()}:{os.getpid()}"


def _fail(run_id, expected, message, diagnostics=None):
    fields = {"error": message[:10000]}
    if diagnostics:
        fields["diagnostics"] = diagnostics[:50]
    services.finish(
        run_id,
        expected,
        RunStatus.ERRORED,
        actor=Actor.system("terraform-runner", door="worker"),
        **fields,
    )


def _interrupted(run_id, expected, why):
    if why == "canceled":
        # canceled by a person, or the run left this phase (lost / force-unlocked): only the
        # former still matches ``expected``.
        services.finish(run_id, expected, RunStatus.CANCELED)
    else:
        _fail(run_id, expected, f"Timed out after {run_timeout():.0f} s; terraform was stopped.")


def _check(job: Job, result) -> None:
    """Stop the phase when terraform was canceled or timed out."""
    if job.interrupted(result):
        raise Interrupted(job.interrupted(result))


def _execute(run_id, phase: str, status: str, phases, errors) -> tuple[str, TerraformRun | None]:
    """Claim the run for ``phase`` (the run is then in ``status``) and run ``phases(job, run)``:
    (the status it ended in or why not, the run). ``errors`` end it errored with their message,
    an interruption canceled; anything else errored too: a run never stays stuck in ``status``."""
    if not services.claim(run_id, phase, worker_name()):
        return "not claimed", None
    run = TerraformRun.objects.select_related("workspace").get(pk=run_id)
    job = Job(run, status)
    try:
        return phases(job, run), run
    except Interrupted as exc:
        _interrupted(run_id, status, str(exc))
        return str(exc), run
    except errors as exc:
        _fail(run_id, status, str(exc))
        return RunStatus.ERRORED, run
    except Exception as exc:  # noqa: BLE001 - a run must never stay stuck in `status`
        log.exception("terraform %s of run %s crashed", phase, run_id)
        doing = "planning" if phase == "plan" else "applying"
        _fail(run_id, status, f"Internal error while {doing}: {exc}")
        return RunStatus.ERRORED, run
    finally:
        job.close()


def execute_plan(run_id) -> str:
    """pending → planning → planned | planned_and_finished | errored | canceled."""
    final, run = _execute(
        run_id, "plan", RunStatus.PLANNING, _plan_phases, (RunError, PlanParseError)
    )
    if final == RunStatus.PLANNED and run is not None and run.auto_apply:
        if services.auto_confirm(run_id):
            return execute_apply(run_id)
    return final


def _plan_phases(job: Job, run: TerraformRun) -> str:
    """source, init, plan, show, finish: the status the run ended in."""
    refresh_only = run.kind == TerraformRun.Kind.DRIFT
    job.binary = resolve_binary(job.ws)
    job.prepare_source()
    _init(job)
    serial, lineage = job.state_now()
    argv = [job.binary, "plan", "-input=false", "-json", "-detailed-exitcode", *job.lock_args()]
    if refresh_only:
        argv.append("-refresh-only")
    argv.append(f"-out={plan_file(run)}")
    result, lines = job.call(argv)
    _check(job, result)
    if result.exit_code not in (0, 2):
        return _plan_failed(run, result, lines, refresh_only)
    summary = _show(job, run, refresh_only)
    has_changes = summary["has_changes"]
    if refresh_only:
        services.record_drift(
            run, DriftStatus.DRIFTED if summary["drift"] else DriftStatus.NONE, summary["drift"]
        )
    final = (
        RunStatus.PLANNED if has_changes and not refresh_only else RunStatus.PLANNED_AND_FINISHED
    )
    if final == RunStatus.PLANNED:
        job.save_plan()  # any worker may apply it
    services.finish(
        run.pk,
        RunStatus.PLANNING,
        final,
        summary=summary,
        has_changes=has_changes,
        diagnostics=lines.diagnostics if lines else [],
        state_serial_at_plan=serial,
        state_lineage_at_plan=lineage or "",
    )
    return final


def _init(job: Job) -> None:
    """terraform init, then the provisioner check of the code and its modules."""
    result, _ = job.call(
        [job.binary, "init", "-input=false", "-no-color", "-reconfigure"], json_ui=False
    )
    _check(job, result)
    if result.exit_code != 0:
        raise RunError(f"terraform init failed (exit {result.exit_code}); see the log.")
    refused = tfsandbox.provisioner_refusal(job.ws, job.src, job.data_dir / "modules")
    if refused:
        job.runlog.write(f"\n[backline] {refused}\n")
        raise RunError(refused)


def _plan_failed(run: TerraformRun, result, lines, refresh_only: bool) -> str:
    first = lines.diagnostics[0]["summary"] if lines and lines.diagnostics else ""
    if refresh_only:
        services.record_drift(run, DriftStatus.ERROR, [])
    _fail(
        run.pk,
        RunStatus.PLANNING,
        f"terraform plan failed (exit {result.exit_code})" + (f": {first}" if first else "."),
        lines.diagnostics if lines else None,
    )
    return RunStatus.ERRORED


def _show(job: Job, run: TerraformRun, refresh_only: bool) -> dict:
    """The summary of the saved plan (terraform show -json), also written to the log."""
    out: list[str] = []
    result, _ = job.call(
        [job.binary, "show", "-json", str(plan_file(run))],
        capture=out,
        json_ui=False,
        max_bytes=256 * 2**20,
    )
    _check(job, result)
    if result.exit_code != 0:
        raise RunError(f"terraform show failed (exit {result.exit_code}).")
    summary = parse_plan(json_document("".join(out)), refresh_only=refresh_only)
    job.runlog.write(summary_line(summary))
    return summary


def summary_line(s: dict) -> str:
    if s.get("refresh_only"):
        n = len(s["drift"])
        return f"\nDrift check: {n} change{'s' if n != 1 else ''} made outside Terraform.\n"
    if not s.get("applyable", s.get("has_changes")):
        return "\nPlan summary: no changes.\n"
    moves = "".join(f"\n  moved: {m['from']} -> {m['to']}" for m in s.get("moves", []))
    return (
        f"\n{plan_line(s)} {s['output_changes']} output change"
        f"{'s' if s['output_changes'] != 1 else ''}.{moves}\n"
    )


def execute_apply(run_id) -> str:
    """confirmed → applying → applied | errored | canceled (or discarded when stale)."""
    return _execute(run_id, "apply", RunStatus.APPLYING, _apply_phases, RunError)[0]


def _apply_phases(job: Job, run: TerraformRun) -> str:
    """checks, apply of the saved plan, new state: the status the run ended in."""
    job.binary = resolve_binary(job.ws)
    stale = services.stale_reason(job.ws, run)
    if stale:
        job.runlog.write(f"\nStale plan: {stale}. Not applied.\n")
        return _discard_stale(run, f"Stale plan: {stale}.")
    if not plan_file(run).exists() or not job.src.exists():
        # planned on another worker (or this one lost its disk): the plan saved in the database,
        # applied in a working directory initialised here
        if not job.restore_plan():
            raise RunError("The saved plan file of this run is gone; start a new plan.")
        job.prepare_source()
        _init(job)
    argv = [job.binary, "apply", "-input=false", "-json", "-auto-approve", *job.lock_args()]
    result, lines = job.call([*argv, str(plan_file(run))])
    _check(job, result)
    if result.exit_code != 0:
        return _apply_failed(run, result, lines)
    serial, lineage = job.state_now()
    services.record_applied_state(
        job.ws.pk, serial=serial, lineage=lineage, outputs=(lines.outputs or {})
    )
    services.finish(run.pk, RunStatus.APPLYING, RunStatus.APPLIED)
    return RunStatus.APPLIED


def _discard_stale(run: TerraformRun, reason: str) -> str:
    services.finish(run.pk, RunStatus.APPLYING, RunStatus.DISCARDED, discard_reason=reason)
    return RunStatus.DISCARDED


def _apply_failed(run: TerraformRun, result, lines) -> str:
    summaries = [d["summary"] for d in (lines.diagnostics if lines else [])]
    if any("stale" in s.lower() for s in summaries):
        return _discard_stale(
            run,
            "Stale plan: terraform refused it because the state changed after the plan was made.",
        )
    _fail(
        run.pk,
        RunStatus.APPLYING,
        f"terraform apply failed (exit {result.exit_code})"
        + (f": {summaries[0]}" if summaries else "."),
        lines.diagnostics if lines else None,
    )
    return RunStatus.ERRORED


__all__ = [
    "Interrupted",
    "Job",
    "JsonLines",
    "RunError",
    "RunLog",
    "SENSITIVE",
    "build_env",
    "cancel_grace",
    "execute_apply",
    "execute_plan",
    "format_diagnostic",
    "json_document",
    "plan_file",
    "read_local_state",
    "resolve_binary",
    "run_dir",
    "run_timeout",
    "show",
    "state_path",
    "summary_line",
    "worker_name",
    "ws_root",
]
