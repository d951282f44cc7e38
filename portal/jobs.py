"""One job machinery: the abstract models of every background run with a live log, the reaper
of runs whose worker died, and the re-sender of runs whose broker message was lost.

- :class:`Job`: a status (each app narrows it with its own ``TextChoices``), created / started /
  finished timestamps, ``is_over`` and ``duration``.
- :class:`LoggedJob`: a job a worker executes: ``worker``, ``heartbeat_at``,
  ``cancel_requested``, ``log_size``, chunks (``related_name="log_chunks"``) and the principal
  that started it (``started_by_*``, written and read by ``portal.principal``).
- :class:`LogChunkBase`: one piece of a log (``offset``, ``size``, ``text``, ``created_at``);
  concrete chunk models add ``run = ForeignKey(<job>, related_name="log_chunks")``.

Writing and reading logs: ``portal.joblog``. The worker's transitions (claimed, finished, lost)
go through each app's ``services.py``, which records the audit event and emits the outbound one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any, ClassVar

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone


class Job(models.Model):
    """A background run. Subclasses redeclare ``status`` with their choices and set
    ``finished_statuses`` (and may drop a timestamp they name differently with ``= None``)."""

    status = models.CharField(max_length=24, db_index=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    finished_statuses: ClassVar[tuple[str, ...]] = ()

    class Meta:
        abstract = True

    @property
    def is_over(self) -> bool:
        return self.status in self.finished_statuses

    @property
    def duration(self) -> float | None:
        started = getattr(self, "started_at", None)
        if not started:
            return None
        end = self.finished_at or timezone.now()
        return (end - started).total_seconds()


class LoggedJob(Job):
    """A job executed by a worker that heartbeats while it owns the row, with a chunked log.

    ``running_statuses``: the statuses in which a worker owns the row (the reaper watches them).
    """

    cancel_requested = models.BooleanField(default=False)
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    log_size = models.BigIntegerField(default=0)
    # who started it (``portal.principal``): the worker rebuilds this actor for every action the
    # job takes on its starter's behalf (a pipeline's release step, an auto-apply)
    started_by_kind = models.CharField(max_length=10, blank=True)  # user|token|webhook|system
    started_by_name = models.CharField(max_length=200, blank=True)
    started_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_by_token = models.ForeignKey(
        "portal.ApiToken", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    running_statuses: ClassVar[tuple[str, ...]] = ()

    class Meta:
        abstract = True


class LogChunkBase(models.Model):
    """A piece of a job's log, already masked. ``offset`` is its first byte in the whole log."""

    offset = models.BigIntegerField()
    size = models.PositiveIntegerField()
    text = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        abstract = True


def log_chunk_meta(constraint: str) -> type:
    """The ``Meta`` of a ``LogChunkBase`` model whose foreign key to its job is ``run``: chunks
    in order, one per offset, under the unique constraint named ``constraint``."""
    unique = models.UniqueConstraint(fields=["run", "offset"], name=constraint)
    return type("Meta", (), {"ordering": ["run", "offset"], "constraints": [unique]})


def _lock_row(model, pk):
    return model.objects.select_for_update(skip_locked=True, no_key=True).filter(pk=pk).first()


def reap_stale(
    model,
    *,
    stale_seconds: float,
    on_lost: Callable[[Any, float], Any],
    statuses: Iterable[str] | None = None,
    lock: Callable[[Any], Any] | None = None,
) -> list:
    """Hand each row of ``model`` in a running status whose heartbeat is older than
    ``stale_seconds`` to ``on_lost(row, silent_seconds)``, once, inside a transaction holding
    the row lock (``lock(pk)`` returns the locked row; default: ``SELECT … FOR UPDATE SKIP
    LOCKED``). ``on_lost`` marks the row lost (or whatever the app's policy is), appends a
    notice to the log, records the audit event. Returns the primary keys handed over."""
    statuses = tuple(statuses if statuses is not None else model.running_statuses)
    now = timezone.now()
    cutoff = now - timedelta(seconds=stale_seconds)
    ids = list(
        model.objects.filter(status__in=statuses, heartbeat_at__lt=cutoff).values_list(
            "pk", flat=True
        )
    )
    reaped = []
    for pk in ids:
        with transaction.atomic():
            row = lock(pk) if lock is not None else _lock_row(model, pk)
            if row is None or row.status not in statuses:
                continue
            if row.heartbeat_at is None or row.heartbeat_at >= cutoff:
                continue
            on_lost(row, (now - row.heartbeat_at).total_seconds())
            reaped.append(pk)
    return reaped


def requeue_waiting(
    queryset, *, stamp_field: str, older_than: float, enqueue: Callable[[Any], Any], limit=1000
) -> list:
    """Send again the rows of ``queryset`` (jobs waiting for a worker) last sent more than
    ``older_than`` seconds ago (``stamp_field``, null: never stamped); a duplicate message is
    harmless, the worker claims a job with a conditional UPDATE. Returns their keys."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=older_than)
    due = queryset.filter(
        Q(**{f"{stamp_field}__lt": cutoff}) | Q(**{f"{stamp_field}__isnull": True})
    )
    ids = list(due.values_list("pk", flat=True)[:limit])
    if ids:
        queryset.filter(pk__in=ids).update(**{stamp_field: now})
        for pk in ids:
            enqueue(pk)
    return ids


__all__ = ["Job", "LoggedJob", "LogChunkBase", "reap_stale", "requeue_waiting"]
