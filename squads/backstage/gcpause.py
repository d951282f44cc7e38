"""The cyclic garbage collector paused while an import runs.

An import holds every parsed document, entity and desired row alive until it ends (tens of
thousands of dicts per 10,000 entities): each automatic collection of the oldest generation
walks all of them again, and at 11,550 entities those collections were about a quarter of
the import's time (21 s -> 16 s with the collector off, same machine and load). What the
import allocates is freed by reference counting; cycles left behind wait for the next
collection after it. Nested and concurrent imports (threads of one worker) share one pause:
the collector comes back when the last ends, if it was on before the first began.
"""

import gc
import threading
from contextlib import contextmanager

_lock = threading.Lock()
_state = {"holders": 0, "was_enabled": False}


@contextmanager
def paused():
    with _lock:
        if _state["holders"] == 0:
            _state["was_enabled"] = gc.isenabled()
            gc.disable()
        _state["holders"] += 1
    try:
        yield
    finally:
        with _lock:
            _state["holders"] -= 1
            if _state["holders"] == 0 and _state["was_enabled"]:
                gc.enable()
