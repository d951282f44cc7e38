"""The live log of a background job: one writer, one reader, one answer shape.

A job's log is a sequence of chunk rows (``portal.jobs.LogChunkBase``: ``run``, ``offset``,
``size``, ``text``); ``offset`` is the chunk's first byte in the whole log and the job row's
``log_size`` is where the next chunk goes. The writer stores a chunk and moves ``log_size`` in
one transaction, so a killed worker leaves either both or neither.

Every log endpoint (HTML tail and API, for every kind of job) answers :func:`page`::

    {"offset": int, "next_offset": int, "text": str, "complete": bool}

``offset`` is where this answer starts, ``next_offset`` where the next read starts (ask again
with ``?offset=<next_offset>``), ``complete`` is true once the job is over and everything was
read: nothing will ever be added after ``next_offset``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone

CHUNK_BYTES = 64 * 1024  # the most one chunk row holds; a longer write is split
TRUNCATED = "\n[backline] log truncated: more than {limit} bytes; the rest was discarded\n"
PARTIAL_ESCAPE_RE = re.compile(r"\x1b(?:\[[0-9;?]{0,16})?$")


class WatchedRun:
    """Heartbeat and cancel polling for a job row that a worker executes.

    Subclasses set ``model`` (a model with ``status``, ``heartbeat_at`` and
    ``cancel_requested``); ``init_watch`` sets ``run_id`` and ``status`` (the status the row
    must still be in while this worker owns it). ``gone`` becomes true when the row left that
    status elsewhere (lost, canceled, discarded): the executor then stops the process group.
    """

    model: Any = None
    cancel_poll_seconds = 0.5

    def init_watch(self, run_id, status):
        self.run_id = run_id
        self.status = status
        self.gone = False
        self._cancel = False
        self._checked = 0.0

    def _still_mine(self, **fields) -> bool:
        updated = self.model.objects.filter(pk=self.run_id, status=self.status).update(
            heartbeat_at=timezone.now(), **fields
        )
        if not updated:
            self.gone = True
        return bool(updated)

    def heartbeat(self):
        self._still_mine()

    def should_cancel(self) -> bool:
        if self.gone or self._cancel:
            return True
        now = time.monotonic()
        if now - self._checked < self.cancel_poll_seconds:
            return False
        self._checked = now
        row = self.model.objects.filter(pk=self.run_id).values("status", "cancel_requested").first()
        if row is None or row["status"] != self.status:
            self.gone = True
        elif row["cancel_requested"]:
            self._cancel = True
        return self.gone or self._cancel


def _cut(data: bytes, limit: int) -> int:
    """The largest cut at or below ``limit`` that does not split a UTF-8 character."""
    if limit >= len(data):
        return len(data)
    cut = limit
    while cut > 0 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return cut


def split_chunks(text: str, chunk_bytes: int = CHUNK_BYTES) -> list[tuple[str, int]]:
    """``text`` as (piece, byte size) pairs of at most ``chunk_bytes`` each, whole characters."""
    data = text.encode()
    if len(data) <= chunk_bytes:
        return [(text, len(data))]
    pieces = []
    while data:
        cut = _cut(data, chunk_bytes) or len(data)
        pieces.append((data[:cut].decode(), cut))
        data = data[cut:]
    return pieces


class LogWriter(WatchedRun):
    """Appends masked text to a job's log in small chunks and refreshes its heartbeat.

    ``model`` is the job model, ``chunk_model`` its chunk model (foreign key ``run``).
    ``mask`` (optional) is applied to every text before it is stored; ``max_bytes`` caps the
    whole log (one notice, the rest discarded). An escape sequence cut in two by a flush is
    held back and sent with the next text, so that the page renders (or strips) it whole.
    """

    chunk_model: Any = None

    def __init__(
        self, run, status, *, mask: Callable[[str], str] | None = None, max_bytes: int | None = None
    ):
        self.init_watch(run.pk, status)
        self.size = run.log_size
        self.mask = mask
        self.max_bytes = settings.JOB_LOG_MAX_BYTES if max_bytes is None else max_bytes
        self.truncated = False
        self._carry = ""

    def write(self, text: str):
        text = self._carry + (text or "")
        self._carry = ""
        m = PARTIAL_ESCAPE_RE.search(text)
        if m:
            self._carry, text = text[m.start() :], text[: m.start()]
        if not text or self.truncated:
            return
        text = text.replace("\x00", "\ufffd")
        if self.mask is not None:
            text = self.mask(text)
        data = text.encode()
        room = self.max_bytes - self.size
        if len(data) > room:
            self.truncated = True
            text = data[: _cut(data, max(room, 0))].decode() + TRUNCATED.format(
                limit=self.max_bytes
            )
        self._store(split_chunks(text))

    def _store(self, pieces: list[tuple[str, int]]):
        rows, offset = [], self.size
        for piece, size in pieces:
            rows.append(self.chunk_model(run_id=self.run_id, offset=offset, size=size, text=piece))
            offset += size
        with transaction.atomic():  # chunks and log_size move together (a kill leaves neither)
            if len(rows) == 1:
                rows[0].save(force_insert=True)
            else:
                self.chunk_model.objects.bulk_create(rows)
            self._still_mine(log_size=offset)
        self.size = offset


def append_notice(run, text: str):
    """Append ``text`` after the last stored chunk of ``run`` (whatever ``log_size`` says, e.g.
    for a worker that died mid-write) and move ``run.log_size``; the caller saves ``run``."""
    chunks = run.log_chunks
    end = chunks.aggregate(end=Max(F("offset") + F("size")))["end"]
    run.log_size = max(run.log_size, end or 0)
    for piece, size in split_chunks(text):
        chunks.model.objects.create(run=run, offset=run.log_size, size=size, text=piece)
        run.log_size += size


def read(chunk_model, run_id, offset: int = 0, *, limit: int | None = None, end: int | None = None):
    """Log text from byte ``offset`` (up to about ``limit`` bytes, never past ``end``);
    returns (text, next_offset). Reads the chunk that contains ``offset``, then whole chunks."""
    offset = max(0, int(offset or 0))
    head = (
        chunk_model.objects.filter(run_id=run_id, offset__lt=offset)
        .order_by("-offset")
        .only("offset", "size", "text")
        .first()
    )
    parts: list[bytes] = []
    pos = offset
    if head is not None and head.offset + head.size > offset:
        parts.append(head.text.encode()[offset - head.offset :])
        pos = head.offset + head.size
    rest = chunk_model.objects.filter(run_id=run_id, offset__gte=offset)
    if end is not None:
        rest = rest.filter(offset__lt=end)
    total = sum(len(p) for p in parts)
    for chunk in rest.order_by("offset").only("offset", "size", "text").iterator(chunk_size=200):
        if limit is not None and total >= limit:
            break
        parts.append(chunk.text.encode())
        total += chunk.size
        pos = chunk.offset + chunk.size
    data = b"".join(parts)
    if end is not None and pos > end:
        data, pos = data[: max(0, len(data) - (pos - end))], end
    return data.decode("utf-8", errors="replace"), max(pos, offset)


def page(
    run, offset: int, *, limit: int, over: bool | None = None, start: int = 0, end=None
) -> dict:
    """The one answer of every log endpoint (see the module doc).

    ``run`` is the job whose chunks hold the text, read *before* this call so that its status
    and ``log_size`` are not newer than the text. ``over`` defaults to ``run.is_over``. A part of
    the log (a pipeline step) passes ``start`` (its first byte in the run log; offsets are then
    relative to it) and ``end`` (its last byte + 1, None while it is still growing).
    """
    over = run.is_over if over is None else over
    chunk_model = run.log_chunks.model
    text, nxt = read(chunk_model, run.pk, start + offset, limit=limit, end=end)
    last = end if end is not None else run.log_size
    return {
        "offset": offset,
        "next_offset": nxt - start,
        "text": text,
        "complete": bool(over and nxt >= last),
    }


def empty_page(offset: int, *, complete: bool) -> dict:
    """The answer for a part of a log that has not started (a step still queued)."""
    return {"offset": offset, "next_offset": offset, "text": "", "complete": complete}


def window_start(run, window: int) -> int:
    """Offset of the first chunk of the last ``window`` bytes of the log (0 for short logs)."""
    if run.log_size <= window:
        return 0
    first = (
        run.log_chunks.filter(offset__gte=run.log_size - window)
        .order_by("offset")
        .values_list("offset", flat=True)
        .first()
    )
    return first if first is not None else 0


def full_text(run):
    """Every chunk's text in order (for the raw log download), streamed."""
    return run.log_chunks.order_by("offset").values_list("text", flat=True).iterator(chunk_size=100)


__all__ = [
    "LogWriter",
    "WatchedRun",
    "append_notice",
    "empty_page",
    "full_text",
    "page",
    "read",
    "split_chunks",
    "window_start",
]
