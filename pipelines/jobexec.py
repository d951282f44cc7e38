"""One job of a ``jobs:`` run on whichever worker took it: its own checkout of the run's
commit, its steps (``pipelines.runner.Execution.run_step``), its own log; then
``pipelines.dag.finish_job`` moves the run on."""

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from pipelines import approvals, artifacts, dag, runner
from pipelines.models import (
    JobLogChunk,
    JobRun,
    JobStatus,
    PipelineRun,
    RunStatus,
    StepRun,
    run_workdir,
)
from pipelines.runner import (
    BOLD,
    CYAN,
    DIM,
    RED,
    RESET,
    YELLOW,
    Execution,
    Stop,
    worker_name,
)
from pipelines.spec import Spec
from portal.gitsource import Checkout, redact_url
from portal.joblog import LogWriter

log = logging.getLogger(__name__)


class JobLog(LogWriter):
    """The job's log; a cancel of the run cancels the job too."""

    model = JobRun
    chunk_model = JobLogChunk

    def __init__(self, job, **options):
        super().__init__(job, JobStatus.RUNNING, **options)
        self.parent_id = job.run_id

    def should_cancel(self) -> bool:
        if super().should_cancel():
            return True
        if self._checked and not self._cancel:  # polled just now: the run's flag too
            row = PipelineRun.objects.filter(pk=self.parent_id).values("cancel_requested")
            self._cancel = bool(row and row[0]["cancel_requested"])
        return self._cancel


@dataclass
class JobSource:
    """What ``portal.gitsource.Checkout`` reads of a run, for one job: the run's commit, in a
    directory of the job's own."""

    pk: str
    service: object
    service_id: int
    ref: str
    requested_commit: str


class JobExecution(Execution):
    job_spec: dict

    def __init__(self, job):
        self.job = job
        super().__init__(job.run)
        self.runlog = JobLog(job, mask=self.runlog.mask)
        self.watch["should_cancel"] = self.runlog.should_cancel
        self.watch["on_heartbeat"] = self.runlog.heartbeat

    def source(self) -> Path:
        run, runlog = self.run, self.runlog
        matrix = " ".join(f"{k}={v}" for k, v in self.job.matrix.items())
        runlog.write(f"{BOLD}{CYAN}▶ job {self.job.name}{RESET} {DIM}{matrix}{RESET}\n")
        if not run.service.repository_url:
            workdir = Path(self.conf_dir())
            workdir.mkdir(parents=True, exist_ok=True)
            return workdir
        runlog.write(f"{DIM}{redact_url(run.service.repository_url)} @ {run.commit_sha}{RESET}\n")
        workdir, _sha = self.check_out("source")
        return workdir

    def new_checkout(self) -> Checkout:
        run = self.run
        source = JobSource(
            f"{run.pk}-job{self.job.index}", run.service, run.service_id, run.ref, run.commit_sha
        )
        return Checkout(source, on_output=self.runlog.write, **self.watch)

    def conf_dir(self) -> Path:
        return Path(f"{run_workdir(self.run.pk)}-job{self.job.index}")

    workdir = conf_dir

    def existing_steps(self, spec) -> list:
        steps = list(StepRun.objects.filter(job_id=self.job.pk).order_by("index"))
        for step, step_spec in zip(steps, self.job_spec["steps"], strict=True):
            step.spec = step_spec
        return steps

    create_steps = existing_steps

    def start_job(self) -> tuple[str, str]:
        workdir = self.source()
        spec = Spec(self.run.spec or {})
        self.job_spec = next(j for j in spec.data["jobs"] if j["name"] == self.job.name)
        return self.run_job(spec, workdir)

    def resume_job(self, a) -> tuple[str, str]:
        """Go on after the approval ``a`` was decided (or end the job with it)."""
        spec = Spec(self.run.spec or {})
        self.job_spec = next(j for j in spec.data["jobs"] if j["name"] == self.job.name)
        status, error = self.close_approval(a)
        if status != RunStatus.SUCCEEDED:
            return status, error
        workdir = self.resume_source()
        return self.run_job(spec, workdir, self.steps_after(spec, a.step.index))

    def run_job(self, spec, workdir, steps=None) -> tuple[str, str]:
        """Restore the cache (unless resumed: ``steps``), run the steps; on success save the
        cache and keep the artifacts (over the cap: the job fails, nothing is kept)."""
        note = self.runlog.write
        cache = self.job_spec.get("cache")
        if cache and steps is None:
            artifacts.restore_cache(self.run.service_id, cache, workdir, note)
        status, error = self.run_steps(spec, workdir, steps)
        if status != RunStatus.SUCCEEDED:
            return status, error
        if cache:
            artifacts.save_cache(self.run.service_id, cache, workdir, note)
        if self.job_spec.get("artifacts"):
            try:
                artifacts.save_artifacts(self.job, self.job_spec["artifacts"], workdir, note)
            except artifacts.KEEP_ERRORS as exc:
                note(f"{RED}✖ {exc}{RESET}\n")
                return RunStatus.FAILED, str(exc)
        return status, error

    def cleanup(self):
        if self.checkout is not None:
            self.checkout.cleanup()
        else:
            shutil.rmtree(self.conf_dir(), ignore_errors=True)


def execute_job(job_id) -> None:
    """Claim the job (a duplicate delivery does nothing), run its steps, move the run on."""
    job = dag.claim_job(job_id, worker=worker_name())
    if job is None:
        return
    if job.run.status != RunStatus.RUNNING or job.run.cancel_requested:
        dag.finish_job(job_id, JobStatus.CANCELED, "the run is over")
        return
    _guarded(JobExecution(job), JobExecution.start_job)


def resume_after_approval(approval_id) -> None:
    """An approval was decided (or timed out, or its run canceled): claim the parked run or
    job again (a duplicate delivery does nothing) and go on."""
    a = approvals.claim(approval_id, worker=worker_name())
    if a is None:
        return
    if a.step.job_id is None:
        runner.resume_run(a)
        return
    job = JobRun.objects.select_related("run", "run__service", "run__service__owner")
    _guarded(JobExecution(job.get(pk=a.step.job_id)), lambda ex: ex.resume_job(a))


def _guarded(ex, body) -> None:
    """``body(ex)``, then the job finishes and moves the run on, or parks at an approval."""
    job_id, status, error, parked = ex.job.pk, JobStatus.FAILED, "", False
    try:
        status, error = body(ex)
        # parked: the workspace and the job wait for the decision, nothing to finish yet
        parked = status == RunStatus.WAITING and approvals.park(ex.parked, holder=ex.job)
        if status == RunStatus.CANCELED:
            ex.runlog.write(f"{YELLOW}■ canceled{RESET}\n")
    except Stop as stop:
        status, error = stop.status, stop.error
    except Exception as exc:
        log.exception("job %s crashed", job_id)
        error = f"internal error: {exc.__class__.__name__}: {exc}"
        ex.runlog.write(f"\n{RED}✖ {error}{RESET}\n")
    finally:
        if not parked:
            ex.cleanup()
            dag.finish_job(job_id, status, error)
