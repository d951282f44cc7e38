"""Worker side of a pipeline run: claim, check out, read the spec, run the steps, finish.

Called by the Celery task ``pipelines.tasks.execute_run`` with a run id.
"""

import logging
import os
import re
import socket
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from pipelines import conf, sandboxing
from pipelines.executor import WatchedRun, run_process
from pipelines.models import (
    LogChunk,
    PipelineConfig,
    PipelineRun,
    PipelineSecret,
    RunStatus,
    StepRun,
)
from pipelines.source import Checkout, SourceError, redact_url
from pipelines.spec import SPEC_FILENAMES, SpecError, parse
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


PARTIAL_ESCAPE_RE = re.compile(r"\x1b(?:\[[0-9;?]{0,16})?$")


def worker_name():
    return f"{socket.gethostname()}:{os.getpid()}"


class RunLog(WatchedRun):
    """Appends masked text to the run's log in small chunks; refreshes the heartbeat."""

    model = PipelineRun

    def __init__(self, run):
        self.init_watch(run.pk, RunStatus.RUNNING)  # gone: the run left `running` elsewhere
        self.size = run.log_size
        self._carry = ""

    def write(self, text: str):
        # an escape sequence cut in two by a flush is held back and sent with the next text,
        # so that the page renders (or strips) it whole
        text = self._carry + (text or "")
        self._carry = ""
        m = PARTIAL_ESCAPE_RE.search(text)
        if m:
            self._carry, text = text[m.start() :], text[: m.start()]
        if not text:
            return
        text = text.replace("\x00", "\ufffd")
        size = len(text.encode())
        with transaction.atomic():  # chunk and log_size move together (a kill leaves neither)
            LogChunk.objects.create(run_id=self.run_id, offset=self.size, size=size, text=text)
            self._still_mine(log_size=self.size + size)
        self.size += size


def claim(run_id) -> bool:
    now = timezone.now()
    return bool(
        PipelineRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
            status=RunStatus.RUNNING, started_at=now, heartbeat_at=now, worker=worker_name()
        )
    )


def _finish(run_id, status, error=""):
    fields = {"status": status, "finished_at": timezone.now()}
    if error:
        fields["error"] = error[:5000]
    done = PipelineRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(**fields)
    if done:
        count_finished(run_id)
    StepRun.objects.filter(run_id=run_id, status=RunStatus.QUEUED).update(status=RunStatus.CANCELED)
    return done


def count_finished(run_id):
    """Backline's own metrics (portal.metrics): finished runs by status, and their duration."""
    from portal import metrics

    row = (
        PipelineRun.objects.filter(pk=run_id).values("status", "started_at", "finished_at").first()
    )
    if not row:
        return
    metrics.PIPELINE_RUNS.labels(status=row["status"]).inc()
    if row["started_at"] and row["finished_at"]:
        metrics.PIPELINE_DURATION.observe((row["finished_at"] - row["started_at"]).total_seconds())


def _load_spec(run, workdir: Path):
    for name in SPEC_FILENAMES:
        path = workdir / name
        if path.is_file():
            return "repository", name, path.read_text(errors="replace")
    config = PipelineConfig.objects.filter(service_id=run.service_id).first()
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


def execute(run_id):
    if not claim(run_id):
        return None
    run = PipelineRun.objects.select_related("service").get(pk=run_id)
    runlog = RunLog(run)
    hb = conf.heartbeat_seconds()
    secrets = dict(
        PipelineSecret.objects.filter(service_id=run.service_id).values_list("name", "value")
    )
    secret_values = list(secrets.values())
    checkout = None
    try:
        unavailable = sandboxing.check_available()
        if unavailable:
            runlog.write(f"{RED}✖ {unavailable}{RESET}\n")
            return _finish(run_id, RunStatus.FAILED, unavailable)
        if not sandbox_enabled():
            runlog.write(f"{YELLOW}⚠ {sandbox_off_warning()}{RESET}\n")
        shown = redact_url(run.service.repository_url) or "(none)"
        runlog.write(f"{BOLD}{CYAN}▶ source{RESET} {shown} @ {run.ref}\n")
        if run.service.repository_url:
            try:
                checkout = Checkout(
                    run,
                    on_output=runlog.write,
                    should_cancel=runlog.should_cancel,
                    on_heartbeat=runlog.heartbeat,
                    heartbeat_every=hb,
                )
                workdir, sha = checkout.prepare()
            except SourceError as exc:
                if runlog.should_cancel():
                    return _finish(run_id, RunStatus.CANCELED)
                runlog.write(f"{RED}✖ source: {exc}{RESET}\n")
                return _finish(run_id, RunStatus.FAILED, f"Source: {exc}")
            author, message = checkout.commit_info(sha)
            run.commit_sha = sha
            fields = {"commit_sha": sha}
            if not run.commit_message and message:
                fields["commit_message"] = message[:5000]
                fields["commit_author"] = author[:200]
            PipelineRun.objects.filter(pk=run_id).update(**fields)
            runlog.write(f"{DIM}checked out {sha}{RESET}\n")
        else:
            workdir = Path(conf_workdir(run_id))
            workdir.mkdir(parents=True, exist_ok=True)
            runlog.write(f"{DIM}no repository: running in an empty workspace{RESET}\n")

        source, where, text = _load_spec(run, workdir)
        if source is None:
            msg = "No pipeline spec: add backline.yml to the repository or store one in the portal."
            runlog.write(f"{RED}✖ {msg}{RESET}\n")
            return _finish(run_id, RunStatus.FAILED, msg)
        try:
            spec = parse(text)
        except SpecError as exc:
            msg = f"Invalid pipeline spec in {where}: {exc}"
            runlog.write(f"{RED}✖ {msg}{RESET}\n")
            PipelineRun.objects.filter(pk=run_id).update(spec_source=source)
            return _finish(run_id, RunStatus.FAILED, msg)
        PipelineRun.objects.filter(pk=run_id).update(spec_source=source, spec=spec.data)
        PipelineConfig.objects.update_or_create(
            service_id=run.service_id, defaults={"known_branches": spec.data.get("branches")}
        )
        if run.trigger == PipelineRun.Trigger.PUSH and not spec.branch_matches(run.ref):
            msg = f"Branch {run.ref!r} is not matched by the spec's branch filters; nothing to run."
            runlog.write(f"{YELLOW}{msg}{RESET}\n")
            return _finish(run_id, RunStatus.CANCELED, msg)
        missing = [n for n in spec.secret_names() if n not in secrets]
        if missing:
            msg = f"Secrets not defined for {run.service.slug}: {', '.join(missing)}"
            runlog.write(f"{RED}✖ {msg}{RESET}\n")
            return _finish(run_id, RunStatus.FAILED, msg)

        steps = []
        for i, (si, stage, step_spec) in enumerate(spec.steps()):
            steps.append(
                StepRun(
                    run_id=run_id,
                    stage=stage,
                    stage_index=si,
                    index=i,
                    name=step_spec["name"],
                    kind=step_spec["kind"],
                    command=step_spec["run"],
                    timeout=step_spec["timeout"] or spec.data["timeout"],
                )
            )
        StepRun.objects.bulk_create(steps)
        step_specs = [s for _si, _st, s in spec.steps()]
        steps = list(StepRun.objects.filter(run_id=run_id).order_by("index"))
        final = RunStatus.SUCCEEDED
        error = ""
        max_bytes = conf.max_step_log_bytes()
        grace = conf.kill_grace_seconds()
        for step, step_spec in zip(steps, step_specs, strict=True):
            step.spec = step_spec
            if runlog.should_cancel():
                final = RunStatus.CANCELED
                break
            now = timezone.now()
            StepRun.objects.filter(pk=step.pk).update(
                status=RunStatus.RUNNING, started_at=now, log_offset=runlog.size
            )
            runlog.write(f"{BOLD}{CYAN}▶ {step.stage} / {step.name}{RESET}\n")
            lines = step.command.strip().splitlines() or [""]
            more = " …" if len(lines) > 1 else ""
            runlog.write(f"{DIM}$ {lines[0]}{more}{RESET}\n")
            if step_spec.get("kind") == "release":  # start a release, wait for its outcome
                from pipelines.releases.pipeline import run_release_step

                res = run_release_step(
                    run,
                    step,
                    step_spec,
                    on_output=runlog.write,
                    should_cancel=runlog.should_cancel,
                    on_heartbeat=runlog.heartbeat,
                    heartbeat_every=hb,
                )
            else:
                res = run_process(
                    ["/bin/sh", "-c", step.command],
                    cwd=workdir,
                    env=step_env(run, spec, step, secrets, workdir),
                    timeout=step.timeout,
                    secrets=secret_values,
                    on_output=runlog.write,
                    should_cancel=runlog.should_cancel,
                    on_heartbeat=runlog.heartbeat,
                    heartbeat_every=hb,
                    max_output_bytes=max_bytes,
                    grace=grace,
                    sandbox=sandboxing.step_policy(
                        spec, step_spec, workdir, checkout.cache if checkout else None
                    ),
                )
            step_error = ""
            if res.canceled:
                status = RunStatus.CANCELED
                runlog.write(f"\n{YELLOW}■ canceled after {res.duration:.1f}s{RESET}\n")
            elif res.timed_out:
                status = RunStatus.TIMED_OUT
                runlog.write(
                    f"\n{RED}✖ timed out after {step.timeout:g}s; the step's processes were killed{RESET}\n"
                )
                error = f"Step {step.stage}/{step.name} timed out after {step.timeout:g}s."
            elif res.limit_reason:
                status = RunStatus.FAILED
                step_error = res.limit_reason
                runlog.write(f"\n{RED}✖ {step.name}: {res.limit_reason}{RESET}\n")
                error = f"Step {step.stage}/{step.name}: {res.limit_reason}."
            elif res.exit_code == 0:
                status = RunStatus.SUCCEEDED
                runlog.write(f"{GREEN}✔ {step.name} succeeded in {res.duration:.2f}s{RESET}\n")
            else:
                status = RunStatus.FAILED
                runlog.write(
                    f"{RED}✖ {step.name} failed with exit code {res.exit_code} after {res.duration:.2f}s{RESET}\n"
                )
                error = f"Step {step.stage}/{step.name} failed with exit code {res.exit_code}."
            StepRun.objects.filter(pk=step.pk, status=RunStatus.RUNNING).update(
                status=status,
                exit_code=res.exit_code,
                finished_at=timezone.now(),
                truncated=res.truncated,
                output_bytes=res.output_bytes,
                error=step_error,
            )
            if status != RunStatus.SUCCEEDED:
                final = status
                break
        if final == RunStatus.CANCELED and runlog.gone:
            return None  # lost or canceled elsewhere: the row already says so
        if final == RunStatus.CANCELED:
            row = PipelineRun.objects.filter(pk=run_id).values("error").first() or {}
            error = row.get("error") or "Canceled."
        runlog.write(
            {
                RunStatus.SUCCEEDED: f"{GREEN}{BOLD}✔ pipeline succeeded{RESET}\n",
                RunStatus.CANCELED: f"{YELLOW}{BOLD}■ pipeline canceled{RESET}\n",
            }.get(final, f"{RED}{BOLD}✖ pipeline {final.replace('_', ' ')}{RESET}\n")
        )
        return _finish(run_id, final, error)
    except Exception as exc:
        log.exception("pipeline run %s crashed", run_id)
        try:
            runlog.write(f"\n{RED}✖ internal error: {exc.__class__.__name__}: {exc}{RESET}\n")
        finally:
            _finish(run_id, RunStatus.FAILED, f"Internal error: {exc.__class__.__name__}: {exc}")
        return None
    finally:
        if checkout is not None:
            checkout.cleanup()
        else:
            import shutil

            shutil.rmtree(conf_workdir(run_id), ignore_errors=True)


def conf_workdir(run_id):
    from pipelines.models import workspace_root

    return workspace_root() / "runs" / str(run_id)


__all__ = ["execute", "claim", "RunLog"]
