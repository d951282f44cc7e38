"""Reads of a pipeline run's log and steps, used by pages and the API (``portal.joblog`` does
the reading; a step's log is its part of the run's, or of its job's, log)."""

from __future__ import annotations

from typing import Any

from pipelines.models import LogChunk
from portal import joblog


def read_log(run, offset=0, limit=None):
    """Log text from byte ``offset``; returns (text, next_offset)."""
    return joblog.read(LogChunk, run.pk, offset, limit=limit)


def log_page(run, offset, *, limit):
    """The log answer (``portal.joblog.page``) of a run; ``run`` read just before."""
    return joblog.page(run, offset, limit=limit)


def step_log_page(step, offset, *, limit):
    """The log answer of one step: its part of the run log (of its job's log, for a step of a
    ``jobs:`` pipeline), offsets from the step's start."""
    owner = step.job if step.job_id else step.run
    if step.log_offset is None:
        return joblog.empty_page(offset, complete=step.is_over)
    end = step.log_end
    if end is None and step.is_over:  # finished before log_end was recorded
        later = owner.steps.filter(index__gt=step.index, log_offset__isnull=False)
        end = later.order_by("index").values_list("log_offset", flat=True).first()
        end = owner.log_size if end is None else end
    return joblog.page(
        owner, offset, limit=limit, over=step.is_over, start=step.log_offset, end=end
    )


def log_window_start(run, window):
    """Offset of the first chunk of the last ``window`` bytes of the log (0 for short logs)."""
    return joblog.window_start(run, window)


def step_groups(steps):
    """Steps grouped by stage, in order, with a stage status."""
    stages: list[dict[str, Any]] = []
    for step in steps:
        if not stages or stages[-1]["name"] != step.stage:
            stages.append({"name": step.stage, "steps": []})
        stages[-1]["steps"].append(step)
    order = ["lost", "timed_out", "failed", "canceled", "running", "waiting", "queued", "succeeded"]
    for stage in stages:
        statuses = {s.status for s in stage["steps"]}
        stage["status"] = next((s for s in order if s in statuses), "queued")
        if statuses == {"succeeded"}:
            stage["status"] = "succeeded"
        elif statuses & {"running", "waiting"}:  # going, or parked at an approval
            stage["status"] = "running" if "running" in statuses else "waiting"
        durations = [s.duration for s in stage["steps"] if s.duration is not None]
        stage["duration"] = sum(durations) if durations else None
    return stages
