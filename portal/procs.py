"""Child processes that end with the process that started them.

``die_with_parent`` is a ``preexec_fn``: the kernel sends the child SIGTERM when its parent
exits for any reason, SIGKILL included (``PR_SET_PDEATHSIG``), so a supervisor that ends
``make run`` with TERM and then KILL leaves no web, worker, fleet, HAProxy or embedded Redis
behind."""

import ctypes
import signal

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:  # pragma: no cover - runs in the child, before exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass
