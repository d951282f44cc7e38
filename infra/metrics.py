"""Terraform gauges on Backline's /metrics, read from the database at scrape time, so a
monitoring rule (or Prometheus) can alert on drift, e.g.
``max(backline_terraform_workspace_drifted) > 0``."""

import logging

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily

from infra.models import DriftStatus, RunStatus, TerraformRun, Workspace

log = logging.getLogger(__name__)


class TerraformCollector:
    def describe(self):
        # Declared empty so registering does not call collect() (which reads the database)
        # at start-up, before migrations may even have run.
        return []

    def collect(self):
        drifted = GaugeMetricFamily(
            "backline_terraform_workspace_drifted",
            "1 when the workspace's latest drift check found changes made outside Terraform",
            labels=["workspace", "squad"],
        )
        locked = GaugeMetricFamily(
            "backline_terraform_workspace_locked",
            "1 while a run holds the workspace lock",
            labels=["workspace", "squad"],
        )
        awaiting = GaugeMetricFamily(
            "backline_terraform_runs_awaiting_confirmation",
            "Planned runs waiting for someone to apply or discard them",
        )
        try:
            rows = Workspace.objects.values_list(
                "slug", "owner__slug", "drift_status", "lock_run_id"
            )
            for slug, squad, drift, lock in rows:
                drifted.add_metric([slug, squad or ""], 1 if drift == DriftStatus.DRIFTED else 0)
                locked.add_metric([slug, squad or ""], 1 if lock else 0)
            awaiting.add_metric([], TerraformRun.objects.filter(status=RunStatus.PLANNED).count())
        except Exception:  # noqa: BLE001 - a scrape must not fail because the DB is away
            log.warning("terraform gauges unavailable", exc_info=True)
            return
        yield drifted
        yield locked
        yield awaiting


_registered = False


def register():
    global _registered
    if _registered:
        return

    REGISTRY.register(TerraformCollector())
    _registered = True
