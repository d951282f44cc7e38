"""Runs of a ``jobs:`` pipeline (pipelines.jobspec): jobs rows, dispatch, fan-in, outcome.

The run's own task (``pipelines.runner.execute``) checks out the source, reads the spec and
calls :func:`start_jobs`: one :class:`~pipelines.models.JobRun` per (expanded) job, its steps,
and a Celery task (:data:`JOB_TASK`) for every job that needs nothing. Each job runs on
whichever worker process is free (``pipelines.jobexec``); when it ends, :func:`finish_job`
takes the run's row lock and :func:`advance` sends the jobs whose needs all succeeded, skips
those with a need that did not, and finishes the run once no job is left to run.
"""

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from pipelines import services
from pipelines.models import (
    ACTIVE_STATUSES,
    JobRun,
    JobStatus,
    LogChunk,
    PipelineRun,
    RunStatus,
    StepRun,
)
from portal.celery import enqueue
from portal.joblog import LogWriter
from portal.jobs import reap_stale, requeue_waiting

JOB_TASK = "pipelines.tasks.execute_job"
GOOD = (JobStatus.SUCCEEDED,)
BAD = (
    JobStatus.FAILED,
    JobStatus.CANCELED,
    JobStatus.TIMED_OUT,
    JobStatus.LOST,
    JobStatus.SKIPPED,
)
MARKS = {"succeeded": "\x1b[32m✔", "skipped": "\x1b[2m○", "canceled": "\x1b[33m■"}


class RunNotes(LogWriter):
    """Lines in the run's log written under its row lock (one writer at a time)."""

    model = PipelineRun
    chunk_model = LogChunk


def _send(job_ids):
    now = timezone.now()
    JobRun.objects.filter(pk__in=job_ids).update(heartbeat_at=now)  # when it was sent
    for pk in job_ids:
        transaction.on_commit(lambda pk=pk: enqueue(JOB_TASK, pk))


def start_jobs(run, spec, runlog) -> None:
    """Create the run's jobs and steps and send the jobs that need nothing (one transaction:
    a worker that dies half-way leaves no job behind)."""
    jobs = spec.data["jobs"]
    names = ", ".join(j["name"] for j in jobs)
    runlog.write(f"\x1b[1m\x1b[36m▶ {len(jobs)} jobs\x1b[0m {names}\n")
    with transaction.atomic():
        rows = JobRun.objects.bulk_create(
            JobRun(
                run_id=run.pk,
                index=i,
                name=j["name"],
                base=j["base"],
                needs=j["needs"],
                matrix=j["matrix"],
            )
            for i, j in enumerate(jobs)
        )
        rows = list(JobRun.objects.filter(run_id=run.pk).order_by("index"))
        steps, index = [], 0
        for row, j in zip(rows, jobs, strict=True):
            for step in j["steps"]:
                steps.append(
                    StepRun(
                        run_id=run.pk,
                        job_id=row.pk,
                        stage=row.name,
                        stage_index=row.index,
                        index=index,
                        name=step["name"],
                        kind=step["kind"],
                        command=step["run"],
                        timeout=step["timeout"] or spec.data["timeout"],
                    )
                )
                index += 1
        StepRun.objects.bulk_create(steps)
        _send([row.pk for row in rows if not row.needs])


def claim_job(job_id, *, worker: str):
    """queued → running (a duplicate delivery claims nothing: None)."""
    now = timezone.now()
    claimed = JobRun.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, started_at=now, heartbeat_at=now, worker=worker
    )
    if not claimed:
        return None
    return JobRun.objects.select_related("run", "run__service", "run__service__owner").get(
        pk=job_id
    )


def finish_job(job_id, status, error="") -> None:
    """running → ``status``, then :func:`advance` the run, under the run's row lock."""
    job = JobRun.objects.only("run_id").get(pk=job_id)
    with transaction.atomic():
        run = PipelineRun.objects.select_for_update(no_key=True).get(pk=job.run_id)
        done = JobRun.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(
            status=status, finished_at=timezone.now(), error=error[:5000]
        )
        if done:
            row = JobRun.objects.get(pk=job_id)
            took = f" in {row.duration:.1f}s" if row.duration is not None else ""
            mark = MARKS.get(status, "\x1b[31m✖")
            _note(run, f"{mark} job {row.name} {status}{took}\x1b[0m\n")
        advance(run)


def _note(run, text):
    writer = RunNotes(run, RunStatus.RUNNING)
    writer.write(text)
    run.log_size = writer.size


def _skip(run, job, status, error):
    JobRun.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
        status=status, finished_at=timezone.now(), error=error
    )
    StepRun.objects.filter(job_id=job.pk, status=RunStatus.QUEUED).update(status=RunStatus.CANCELED)
    job.status = status
    _note(run, f"{MARKS[status]} job {job.name} {status}: {error}\x1b[0m\n")


def advance(run) -> None:
    """Send every job whose needs all succeeded, skip those with a need that did not, and
    finish the run once every job is over. The caller holds the run's row lock."""
    jobs = list(JobRun.objects.filter(run_id=run.pk).order_by("index"))
    by_name = {j.name: j for j in jobs}
    ready = []
    changed = True
    while changed:
        changed = False
        for job in jobs:
            if job.status != JobStatus.QUEUED:
                continue
            needs = [by_name[n] for n in job.needs if n in by_name]
            failed = next((n for n in needs if n.status in BAD), None)
            if run.cancel_requested:
                _skip(run, job, JobStatus.CANCELED, "the run was canceled")
                changed = True
            elif failed is not None:
                _skip(run, job, JobStatus.SKIPPED, f"needs {failed.name}, which {failed.status}")
                changed = True
            elif job.heartbeat_at is None and all(n.status in GOOD for n in needs):
                ready.append(job.pk)
                job.heartbeat_at = timezone.now()
    if ready:
        _send(ready)
    if all(j.status not in ACTIVE_STATUSES for j in jobs):  # none queued, running, waiting
        _finish_run(run, jobs)


def _finish_run(run, jobs) -> None:
    bad = [j for j in jobs if j.status not in GOOD]
    if run.cancel_requested:
        final, error = RunStatus.CANCELED, run.error or "Canceled."
    elif not bad:
        final, error = RunStatus.SUCCEEDED, ""
    else:
        first = next((j for j in bad if j.status != JobStatus.SKIPPED), bad[0])
        final = RunStatus.TIMED_OUT if first.status == JobStatus.TIMED_OUT else RunStatus.FAILED
        error = f"Job {first.name} {first.status}" + (f": {first.error}" if first.error else ".")
    _note(
        run,
        {
            RunStatus.SUCCEEDED: "\x1b[32m\x1b[1m✔ pipeline succeeded\x1b[0m\n",
            RunStatus.CANCELED: "\x1b[33m\x1b[1m■ pipeline canceled\x1b[0m\n",
        }.get(final, f"\x1b[31m\x1b[1m✖ pipeline {final.replace('_', ' ')}\x1b[0m\n"),
    )
    services.finish_run(run.pk, final, error)


def _mark_lost(job, silent):
    job.status = JobStatus.LOST
    job.finished_at = timezone.now()
    job.error = f"the worker {job.worker} stopped sending heartbeats ({silent:.0f}s)"
    job.save(update_fields=["status", "finished_at", "error"])
    StepRun.objects.filter(job_id=job.pk, status=RunStatus.RUNNING).update(
        status=RunStatus.LOST, finished_at=job.finished_at
    )


def reap_lost_jobs(stale_seconds=None) -> list:
    """Beat: jobs whose worker went silent are lost (their run goes on: dependents skipped)."""
    stale = settings.PIPELINES_LOST_AFTER_SECONDS if stale_seconds is None else stale_seconds
    reaped = reap_stale(JobRun, stale_seconds=stale, on_lost=_mark_lost)
    for run_id in set(JobRun.objects.filter(pk__in=reaped).values_list("run_id", flat=True)):
        with transaction.atomic():
            advance(PipelineRun.objects.select_for_update(no_key=True).get(pk=run_id))
    return reaped


def requeue_stale_jobs(after_seconds=None) -> list:
    """Send again the jobs that were sent but not claimed for a while (a lost broker message)."""
    after = settings.PIPELINES_REQUEUE_AFTER_SECONDS if after_seconds is None else after_seconds
    return requeue_waiting(
        JobRun.objects.filter(status=JobStatus.QUEUED, heartbeat_at__isnull=False),
        stamp_field="heartbeat_at",
        older_than=after,
        enqueue=lambda pk: enqueue(JOB_TASK, pk),
    )


def graph(run) -> dict:
    """The run's jobs laid out for the run page: columns by depth, boxes and edges (SVG)."""
    jobs = list(JobRun.objects.filter(run_id=run.pk).order_by("index"))
    depth: dict[str, int] = {}
    for job in jobs:  # stored in a topological order
        depth[job.name] = 1 + max((depth.get(n, 0) for n in job.needs), default=-1)
    cols: dict[int, list] = {}
    for job in jobs:
        cols.setdefault(depth[job.name], []).append(job)
    w, h, gx, gy = 170, 34, 60, 14
    pos, boxes = {}, []
    for d, column in cols.items():
        for r, job in enumerate(column):
            x, y = 10 + d * (w + gx), 10 + r * (h + gy)
            pos[job.name] = (x, y)
            boxes.append({"job": job, "x": x, "y": y, "tx": x + 10, "ty": y + 22})
    edges = []
    seen = set()
    for job in jobs:
        for need in job.needs:
            if need in pos and (need, job.name) not in seen:
                seen.add((need, job.name))
                (x1, y1), (x2, y2) = pos[need], pos[job.name]
                edges.append({"x1": x1 + w, "y1": y1 + h / 2, "x2": x2, "y2": y2 + h / 2})
    width = 20 + len(cols) * (w + gx) - gx
    height = 20 + max((len(c) for c in cols.values()), default=0) * (h + gy) - gy
    return {"boxes": boxes, "edges": edges, "width": width, "height": height, "w": w, "h": h}
