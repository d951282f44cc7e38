"""Worker side of a pipeline run: claim, check out, read the spec, run the steps, finish.

Called by the Celery task ``pipelines.tasks.execute_run`` with a run id.
"""

import logging
import os
import shutil
import socket
from pathlib import Path
from typing import NoReturn

from django.conf import settings
from django.utils import timezone

from pipelines import approvals, dag, models, sandboxing, services
from pipelines.models import PipelineRun, RunStatus, StepRun, run_workdir
from pipelines.spec import SPEC_FILENAMES, Spec, SpecError, parse
from portal import limits
from portal.executor import run_process
from portal.gitsource import Checkout, SourceError, redact_url
from portal.joblog import LogWriter
from portal.masking import Masker
from portal.registry import registry
from portal.sandbox import enabled as sandbox_enabled
from portal.sandbox import off_warning as sandbox_off_warning

log = logging.getLogger(__name__)

BOLD, CYAN, GREEN, RED, YELLOW, DIM, RESET = (
    "\x1b[1m",
    "\x1b[36m",
    "\x1b[32m",
    "\x1b[31m",
    "\x1b[33m",
    "\x1b[2m",
    "\x1b[0m",
)


def worker_name():
    return f"{socket.gethostname()}:{os.getpid()}"


class RunLog(LogWriter):
    """The run's log (``portal.joblog.LogWriter``): owned while the run is ``running``."""

    model = PipelineRun
    chunk_model = models.LogChunk

    def __init__(self, run, **options):  # mask, max_bytes: see LogWriter
        super().__init__(run, RunStatus.RUNNING, **options)  # gone: it left `running` elsewhere


def _load_spec(run, workdir: Path):
    for name in SPEC_FILENAMES:
        path = workdir / name
        if path.is_file():
            with path.open(errors="replace") as f:  # at most one character over the limit
                return "repository", name, f.read(limits.SPEC_MAX + 1)
    config = models.PipelineConfig.objects.filter(service_id=run.service_id).first()
    if config and config.spec_yaml.strip():
        return "portal", "the spec stored in the portal", config.spec_yaml
    return None, None, None


def step_env(run, spec, step, secrets: dict, workdir) -> dict:
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(workdir),
        "LANG": "C.UTF-8",
        "TERM": "xterm-256color",
        "CI": "true",
        "BACKLINE": "true",
        "BACKLINE_RUN_ID": str(run.pk),
        "BACKLINE_RUN_NUMBER": str(run.number),
        "BACKLINE_SERVICE": run.service.slug,
        "BACKLINE_REF": run.ref,
        "BACKLINE_BRANCH": run.ref,
        "BACKLINE_COMMIT": run.commit_sha,
        "BACKLINE_STAGE": step.stage,
        "BACKLINE_STEP": step.name,
    }
    env.update(spec.data.get("env") or {})
    env.update(step.spec.get("env") or {})
    for name in step.spec.get("secrets") or []:
        env[name] = secrets[name]
    return env


class Stop(Exception):
    """Ends a run early with ``status`` (and ``error``, the run's error text)."""

    def __init__(self, status, error=""):
        super().__init__(error)
        self.status, self.error = status, error


def outcome(step, res):
    """(status, log line, run error) of a finished step."""
    if res.canceled:
        return RunStatus.CANCELED, f"\n{YELLOW}■ canceled after {res.duration:.1f}s{RESET}\n", ""
    if res.timed_out:
        return (
            RunStatus.TIMED_OUT,
            f"\n{RED}✖ timed out after {step.timeout:g}s; the step's processes were killed{RESET}\n",
            f"Step {step.stage}/{step.name} timed out after {step.timeout:g}s.",
        )
    if getattr(res, "limit_reason", ""):  # the sandbox ended the step at one of its limits
        return (
            RunStatus.FAILED,
            f"\n{RED}✖ {step.name}: {res.limit_reason}{RESET}\n",
            f"Step {step.stage}/{step.name}: {res.limit_reason}.",
        )
    if res.exit_code == 0:
        return (
            RunStatus.SUCCEEDED,
            f"{GREEN}✔ {step.name} succeeded in {res.duration:.2f}s{RESET}\n",
            "",
        )
    return (
        RunStatus.FAILED,
        f"{RED}✖ {step.name} failed with exit code {res.exit_code} after {res.duration:.2f}s{RESET}\n",
        f"Step {step.stage}/{step.name} failed with exit code {res.exit_code}.",
    )


class Execution:
    """One claimed run on this worker, phase by phase: source, spec, steps, outcome."""

    def __init__(self, run):
        self.run = run
        self.secrets = dict(
            models.PipelineSecret.objects.filter(service_id=run.service_id).values_list(
                "name", "value"
            )
        )
        masker = Masker(list(self.secrets.values()))
        self.runlog = RunLog(run, mask=masker.mask if masker else None)
        self.checkout = None
        self.parked: StepRun | None = None  # the approval step it waits at
        self.keep = False
        self.watch = {
            "should_cancel": self.runlog.should_cancel,
            "on_heartbeat": self.runlog.heartbeat,
            "heartbeat_every": settings.PIPELINES_HEARTBEAT_SECONDS,
        }

    def stop(self, status, msg, color=RED, mark="✖ ") -> NoReturn:
        self.runlog.write(f"{color}{mark}{msg}{RESET}\n")
        raise Stop(status, msg)

    def source(self) -> Path:
        run, runlog = self.run, self.runlog
        unavailable = sandboxing.check_available()
        if unavailable:
            self.stop(RunStatus.FAILED, unavailable)
        if not sandbox_enabled():
            runlog.write(f"{YELLOW}⚠ {sandbox_off_warning()}{RESET}\n")
        shown = redact_url(run.service.repository_url) or "(none)"
        runlog.write(f"{BOLD}{CYAN}▶ source{RESET} {shown} @ {run.ref}\n")
        if not run.service.repository_url:
            workdir = Path(run_workdir(run.pk))
            workdir.mkdir(parents=True, exist_ok=True)
            runlog.write(f"{DIM}no repository: running in an empty workspace{RESET}\n")
            return workdir
        workdir, sha = self.check_out("Source")
        author, message = self.checkout.commit_info(sha)
        run.commit_sha = sha
        fields = {"commit_sha": sha}
        if not run.commit_message and message:
            fields["commit_message"] = message[:5000]
            fields["commit_author"] = author[:200]
        PipelineRun.objects.filter(pk=run.pk).update(**fields)
        runlog.write(f"{DIM}checked out {sha}{RESET}\n")
        return workdir

    def check_out(self, label: str) -> tuple[Path, str]:
        """Clone the source (``new_checkout``: the run's, or a job's part of it): a cancel while
        it clones ends the run canceled, a clone that fails ends it failed with ``<label>: <why>``."""
        try:
            self.checkout = self.new_checkout()
            return self.checkout.prepare()
        except SourceError as exc:
            if self.runlog.should_cancel():
                raise Stop(RunStatus.CANCELED) from None
            self.runlog.write(f"{RED}✖ source: {exc}{RESET}\n")
            raise Stop(RunStatus.FAILED, f"{label}: {exc}") from None

    def spec(self, workdir: Path):
        run = self.run
        source, where, text = _load_spec(run, workdir)
        if source is None:
            self.stop(
                RunStatus.FAILED,
                "No pipeline spec: add backline.yml to the repository or store one in the portal.",
            )
        if len(text) > limits.SPEC_MAX:
            PipelineRun.objects.filter(pk=run.pk).update(spec_source=source)
            self.stop(
                RunStatus.FAILED,
                f"The pipeline spec in {where} is longer than {limits.SPEC_MAX:,} characters.",
            )
        try:
            spec = parse(text)
            approvals.check_squads(spec)
        except SpecError as exc:
            PipelineRun.objects.filter(pk=run.pk).update(spec_source=source)
            self.stop(RunStatus.FAILED, f"Invalid pipeline spec in {where}: {exc}")
        PipelineRun.objects.filter(pk=run.pk).update(spec_source=source, spec=spec.data)
        models.PipelineConfig.objects.update_or_create(
            service_id=run.service_id,
            defaults={
                "known_branches": spec.data.get("branches"),
                "known_schedules": spec.data.get("schedules"),
            },
        )
        if run.trigger == PipelineRun.Trigger.PUSH and not spec.branch_matches(run.ref):
            msg = f"Branch {run.ref!r} is not matched by the spec's branch filters; nothing to run."
            self.stop(RunStatus.CANCELED, msg, color=YELLOW, mark="")
        missing = [n for n in spec.secret_names() if n not in self.secrets]
        if missing:
            names = ", ".join(missing)
            self.stop(RunStatus.FAILED, f"Secrets not defined for {run.service.slug}: {names}")
        return spec

    def new_checkout(self) -> Checkout:
        return Checkout(self.run, on_output=self.runlog.write, **self.watch)

    def workdir(self) -> Path:
        """Where this run's workspace is (kept while it waits for an approval)."""
        return Path(run_workdir(self.run.pk))

    def resume_source(self) -> Path:
        """The workspace after an approval: the one kept when the run was parked, or (another
        machine's worker took it up) the run's commit checked out again."""
        kept = self.workdir()
        if kept.is_dir():
            self.runlog.write(f"{DIM}workspace kept from before the approval{RESET}\n")
            if self.run.service.repository_url:
                self.checkout = self.new_checkout()  # to remove it at the end
            return kept
        self.runlog.write(f"{DIM}workspace not on this worker: checking the commit out again\n")
        self.run.requested_commit = self.run.commit_sha
        return self.source()

    def existing_steps(self, spec) -> list:
        steps = list(StepRun.objects.filter(run_id=self.run.pk).order_by("index"))
        for step, (_si, _stage, step_spec) in zip(steps, spec.steps(), strict=True):
            step.spec = step_spec
        return steps

    def create_steps(self, spec) -> list:
        StepRun.objects.bulk_create(
            StepRun(
                run_id=self.run.pk,
                stage=stage,
                stage_index=si,
                index=i,
                name=step_spec["name"],
                kind=step_spec["kind"],
                command=step_spec["run"],
                timeout=step_spec["timeout"] or spec.data["timeout"],
            )
            for i, (si, stage, step_spec) in enumerate(spec.steps())
        )
        return self.existing_steps(spec)

    def run_step(self, step, spec, workdir):
        """Run one step; returns (status, run error)."""
        runlog = self.runlog
        StepRun.objects.filter(pk=step.pk).update(
            status=RunStatus.RUNNING, started_at=timezone.now(), log_offset=runlog.size
        )
        runlog.write(f"{BOLD}{CYAN}▶ {step.stage} / {step.name}{RESET}\n")
        lines = step.command.strip().splitlines() or [""]
        runlog.write(f"{DIM}$ {lines[0]}{' …' if len(lines) > 1 else ''}{RESET}\n")
        step_kind = registry.step_kinds.get(step.spec.get("kind") or "")
        if step_kind is not None:  # e.g. "release" (releases app): start one, await it
            res = step_kind(self.run, step, step.spec, on_output=runlog.write, **self.watch)
            if getattr(res, "parked", False):  # an approval: it waits without this worker
                self.parked = step
                return RunStatus.WAITING, ""
        else:
            res = run_process(
                ["/bin/sh", "-c", step.command],
                cwd=workdir,
                env=step_env(self.run, spec, step, self.secrets, workdir),
                timeout=step.timeout,
                secrets=list(self.secrets.values()),
                on_output=runlog.write,
                max_output_bytes=settings.PIPELINES_MAX_STEP_LOG_BYTES,
                grace=settings.PIPELINES_KILL_GRACE_SECONDS,
                sandbox=sandboxing.step_policy(
                    spec, step.spec, workdir, self.checkout.cache if self.checkout else None
                ),
                **self.watch,
            )
        status, line, error = outcome(step, res)
        runlog.write(line)
        StepRun.objects.filter(pk=step.pk, status=RunStatus.RUNNING).update(
            status=status,
            exit_code=res.exit_code,
            finished_at=timezone.now(),
            log_end=runlog.size,
            truncated=res.truncated,
            output_bytes=res.output_bytes,
            error=getattr(res, "limit_reason", "") or "",
        )
        return status, error

    def run_steps(self, spec, workdir, steps=None):
        """Run the steps (default: all, created now) in order until one does not succeed (or
        parks at an approval: ``waiting``); returns (final status, error)."""
        for step in self.create_steps(spec) if steps is None else steps:
            if self.runlog.should_cancel():
                return RunStatus.CANCELED, ""
            status, error = self.run_step(step, spec, workdir)
            if status != RunStatus.SUCCEEDED:
                return status, error
        return RunStatus.SUCCEEDED, ""

    def close_approval(self, a) -> tuple[str, str]:
        """The decided approval's step ends (approved: succeeded); (its status, run error)."""
        status, line, error = approvals.outcome(a)
        self.runlog.write(line)
        StepRun.objects.filter(pk=a.step.pk).update(
            status=status,
            exit_code={RunStatus.SUCCEEDED: 0, RunStatus.FAILED: 1}.get(status),
            finished_at=timezone.now(),
            log_end=self.runlog.size,
        )
        return status, error

    def steps_after(self, spec, index) -> list:
        return [s for s in self.existing_steps(spec) if s.index > index]

    def start(self):
        workdir = self.source()
        spec = self.spec(workdir)
        if spec.data.get("jobs"):  # parallel jobs (pipelines.dag): the last one finishes the run
            return dag.start_jobs(self.run, spec, self.runlog)
        return self.settle(*self.run_steps(spec, workdir))

    def resume(self, a):
        """Go on after the approval ``a`` was decided (or end the run with it)."""
        status, error = self.close_approval(a)
        if status == RunStatus.SUCCEEDED:
            workdir = self.resume_source()
            spec = Spec(self.run.spec or {})
            status, error = self.run_steps(spec, workdir, self.steps_after(spec, a.step.index))
        return self.settle(status, error)

    def settle(self, final, error):
        """Finish the run, or park it (``waiting``, workspace kept) at an approval."""
        if final == RunStatus.WAITING:
            self.keep = approvals.park(self.parked, holder=self.run)
            return None
        return self.finish(final, error)

    def finish(self, final, error):
        if final == RunStatus.CANCELED and self.runlog.gone:
            return None  # lost or canceled elsewhere: the row already says so
        if final == RunStatus.CANCELED:
            row = PipelineRun.objects.filter(pk=self.run.pk).values("error").first() or {}
            error = row.get("error") or "Canceled."
        self.runlog.write(
            {
                RunStatus.SUCCEEDED: f"{GREEN}{BOLD}✔ pipeline succeeded{RESET}\n",
                RunStatus.CANCELED: f"{YELLOW}{BOLD}■ pipeline canceled{RESET}\n",
            }.get(final, f"{RED}{BOLD}✖ pipeline {final.replace('_', ' ')}{RESET}\n")
        )
        return services.finish_run(self.run.pk, final, error)

    def cleanup(self):
        if self.keep:  # parked: the workspace waits for the approval with the run
            return
        if self.checkout is not None:
            self.checkout.cleanup()
        else:
            shutil.rmtree(run_workdir(self.run.pk), ignore_errors=True)


def execute(run_id):
    """Claim the run (a duplicate delivery does nothing), execute it phase by phase, finish it."""
    run = services.start_run(run_id, worker=worker_name())
    if run is None:
        return None
    return guarded(Execution(run), Execution.start)


def resume_run(a):
    """The approval ``a`` of a parked run was decided and the run claimed: go on."""
    run = PipelineRun.objects.select_related("service", "service__owner").get(pk=a.run_id)
    return guarded(Execution(run), lambda ex: ex.resume(a))


def guarded(job, body):
    """``body(job)``; a Stop finishes the run with its status, a crash fails it."""
    run_id = job.run.pk
    try:
        return body(job)
    except Stop as stop:
        return services.finish_run(run_id, stop.status, stop.error)
    except Exception as exc:
        log.exception("pipeline run %s crashed", run_id)
        what = f"{exc.__class__.__name__}: {exc}"
        try:
            job.runlog.write(f"\n{RED}✖ internal error: {what}{RESET}\n")
        finally:
            services.finish_run(run_id, RunStatus.FAILED, f"Internal error: {what}")
        return None
    finally:
        job.cleanup()


__all__ = ["execute", "resume_run", "RunLog"]
