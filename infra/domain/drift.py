"""Drift: checks queued by people or the beat schedule, and what a check found."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from infra.domain.queue import queue_run
from infra.domain.workspaces import SCOPE, record
from infra.models import (
    DriftStatus,
    RunStatus,
    TerraformRun,
    Workspace,
)
from portal import events
from portal.actors import Actor


def check_drift(ws: Workspace, *, actor: Actor) -> TerraformRun:
    """A drift check now (refresh-only plan), queued like any run."""
    actor.require(SCOPE, ws.owner, "checking this workspace for drift")
    return queue_run(ws, actor=actor, kind=TerraformRun.Kind.DRIFT, message="Drift check")


def record_drift(run: TerraformRun, status: str, drift: list):
    ws = run.workspace
    previous = ws.drift_status
    Workspace.objects.filter(pk=ws.pk).update(
        drift_status=status, drift_checked_at=timezone.now(), drift_summary=drift, drift_run=run
    )
    if status == DriftStatus.DRIFTED and previous != DriftStatus.DRIFTED:
        with transaction.atomic():
            addresses = [d["address"] for d in drift][:50]
            who = Actor.system("drift-check", door="worker")
            record(who, "infra.workspace.drifted", ws, ws, run=run.pk, drift=addresses)
            events.emit(
                "infra.drift_detected",
                ws.owner,
                {
                    "workspace": ws.slug,
                    "run": run.pk,
                    "addresses": [d["address"] for d in drift][:50],
                },
            )


def schedule_drift_checks(now=None) -> list[int]:
    """Queue a refresh-only drift check for each workspace whose check is due."""
    now = now or timezone.now()
    actor = Actor.system("drift-check", door="beat")
    queued = []
    candidates = Workspace.objects.filter(drift_checks=True, state_serial__isnull=False)
    for ws in candidates:
        if ws.drift_checked_at and ws.drift_checked_at > now - timedelta(
            minutes=ws.drift_interval_minutes
        ):
            continue
        if TerraformRun.objects.filter(
            workspace=ws,
            kind=TerraformRun.Kind.DRIFT,
            status__in=[RunStatus.PENDING, RunStatus.PLANNING],
        ).exists():
            continue
        run = queue_run(
            ws, actor=actor, kind=TerraformRun.Kind.DRIFT, message="Scheduled drift check"
        )
        queued.append(run.pk)
    return queued
