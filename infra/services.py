"""Domain operations for Terraform workspaces and runs: one function per state change.

The operations live in ``infra.domain``, one module per sub-domain (workspaces, variables, the
queue and lock, people's run transitions, worker transitions, drift); this module names them all,
so callers keep writing ``from infra import services; services.queue_run(...)``.

The locking order (workspace row, then run row) is described in ``infra.domain.queue``.
"""

from infra.domain.drift import check_drift, record_drift, schedule_drift_checks
from infra.domain.queue import queue_run, waiting_for
from infra.domain.runs import (
    allowed_actions,
    apply_run,
    cancel_run,
    discard_run,
    force_unlock,
    log_page,
    read_log,
    stale_reason,
)
from infra.domain.variables import delete_variable, set_variable
from infra.domain.worker import (
    RUN_EVENTS,
    auto_confirm,
    claim,
    finish,
    reap_lost_runs,
    record_applied_state,
)
from infra.domain.workspaces import (
    RESERVED_SLUGS,
    SCOPE,
    WORKSPACE_FIELDS,
    create_workspace,
    update_workspace,
    validate_files,
)

__all__ = [
    "RESERVED_SLUGS",
    "RUN_EVENTS",
    "SCOPE",
    "WORKSPACE_FIELDS",
    "allowed_actions",
    "apply_run",
    "auto_confirm",
    "cancel_run",
    "check_drift",
    "claim",
    "create_workspace",
    "delete_variable",
    "discard_run",
    "finish",
    "force_unlock",
    "log_page",
    "queue_run",
    "read_log",
    "reap_lost_runs",
    "record_applied_state",
    "record_drift",
    "schedule_drift_checks",
    "set_variable",
    "stale_reason",
    "update_workspace",
    "validate_files",
    "waiting_for",
]
