"""The reads of the release controller's analyses: metrics, and the runs and measurements.

A measurement round reads a service's golden signals once for all the metrics of its template
that share a window (``Reads``). A claimed batch of releases (``controller.drive_claimed``,
under the row locks of the whole batch) reads at once, before driving any, for every release
in it whose analysis is due: ``batch(releases)`` makes one query for the running analysis
runs, one for the due runs' measurements, then one ``golden_signals_many`` per distinct window
(on the builtin backend one series query and one sample read for the whole batch) and one
``instant`` per distinct raw query. Each release is then judged in Python from those reads at
the batch's one time, with the verdicts it would get driven alone at that time (``run_of`` and
``measurements_of`` read a release's rows themselves when it is driven alone, or when its step
changed while driving).
"""

import time
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta

from django.utils import timezone

from metrics.backends import BackendError, get_backend
from portal import claims
from releases import analysis
from releases.models import AnalysisRun, AnalysisStatus, Measurement

_CURRENT: ContextVar["Reads | None"] = ContextVar("release_reads", default=None)
DUE_MARGIN = timedelta(seconds=1)  # a run due within this of the batch's start is read for


class Reads:
    """A backend's answers at one time ``at``, each read once (``prefill``: many at once)."""

    def __init__(self, backend, at: float, *, defer: bool = False):
        self.backend = backend
        self.at = at
        self.read: dict = {}
        self.runs: dict = {}  # (release id, generation, step index): AnalysisRun
        self.measurements: dict = {}  # run id: [Measurement by index]
        self.defer = defer  # a batch: the rows' writes wait for ``flush``
        self.writes: list = []  # (instance, fields), fields None for a new Measurement

    def flush(self) -> None:
        """The batch's deferred writes: one insert of the measurements, one update of the runs
        and one of the releases (``claims.update_rows``)."""
        Measurement.objects.bulk_create([obj for obj, fields in self.writes if fields is None])
        groups: dict = {}
        for obj, fields in self.writes:
            if fields is not None:
                groups.setdefault((type(obj), tuple(fields)), []).append(obj)
        for (_, fields), objs in groups.items():
            claims.update_rows(objs, list(fields))
        self.writes = []

    def golden_signals(self, service, tracks, start, end, step, window):
        key = (service.pk, tuple(tracks), start, end, step, window)
        if key not in self.read:
            self.read[key] = self.backend.golden_signals(service, tracks, start, end, step, window)
        return self.read[key]

    def instant(self, query, at=None):
        key = ("instant", query, at)
        if key not in self.read:
            self.read[key] = self.backend.instant(query, at=at)
        return self.read[key]

    def prefill(self, services, metrics) -> None:
        """Read the golden signals of ``services`` for every window of ``metrics`` at once,
        and each raw query once. A backend error is left for each release to read (and record)
        itself."""
        spans = {analysis.signal_span(m, self.at) for m in metrics if m["kind"] != "query"}
        for start, end, step, window in sorted(spans):
            try:
                data = self.backend.golden_signals_many(
                    services, list(analysis.TRACKS), start, end, step, window
                )
            except BackendError:
                continue
            for pk, signals in data.items():
                self.read[(pk, analysis.TRACKS, start, end, step, window)] = signals
        for query in sorted({m["query"] for m in metrics if m["kind"] == "query"}):
            try:
                self.instant(query, at=self.at)
            except BackendError:
                continue


def current() -> Reads:
    """The batch's reads while a batch is driven; else fresh reads now (one release)."""
    return _CURRENT.get() or Reads(get_backend(), time.time())


@contextmanager
def using(reads: Reads):
    """Drive with ``reads`` (``current()``) in this block."""
    token = _CURRENT.set(reads)
    try:
        yield reads
    finally:
        _CURRENT.reset(token)


@contextmanager
def batch(releases, at: float | None = None):
    """While driving the locked ``releases``: their running analyses, the due ones'
    measurements and metrics reads, read at once at ``at``."""
    reads = Reads(get_backend(), at if at is not None else time.time(), defer=True)
    by_id = {r.pk: r for r in releases}
    runs = AnalysisRun.objects.filter(release_id__in=list(by_id), status=AnalysisStatus.RUNNING)
    due_by = timezone.now() + DUE_MARGIN
    due = []
    for run in runs:
        r = by_id[run.release_id]
        if (run.generation, run.step_index) == (r.generation, r.step_index):
            reads.runs[(r.pk, r.generation, r.step_index)] = run
            if run.next_measure_at is not None and run.next_measure_at <= due_by:
                due.append(run)
                reads.measurements[run.pk] = []
    if due:
        for m in Measurement.objects.filter(analysis_run_id__in=[run.pk for run in due]).order_by(
            "analysis_run_id", "index"
        ):
            reads.measurements[m.analysis_run_id].append(m)
        services = {by_id[run.release_id].service_id: by_id[run.release_id].service for run in due}
        reads.prefill(list(services.values()), [m for run in due for m in run.metrics])
    with using(reads):
        yield reads
    reads.flush()


def run_of(r):
    """The analysis run of ``r``'s current step (None before it starts)."""
    got = _CURRENT.get()
    key = (r.pk, r.generation, r.step_index)
    if got is not None and key in got.runs:
        return got.runs[key]
    return AnalysisRun.objects.filter(
        release=r, generation=r.generation, step_index=r.step_index
    ).first()


def measurements_of(run) -> list:
    """``run``'s measurements by index (the list the batch read is kept up to date by
    ``taken``)."""
    got = _CURRENT.get()
    if got is not None and run.pk in got.measurements:
        return got.measurements[run.pk]
    return list(run.measurements.order_by("index"))


def taken(run, created) -> None:
    """Record the measurements just ``created`` for ``run`` (in a batch, at its ``flush``)."""
    got = _CURRENT.get()
    if got is not None and run.pk in got.measurements:
        got.measurements[run.pk].extend(created)
    if got is not None and got.defer:
        got.writes += [(m, None) for m in created]
    else:
        Measurement.objects.bulk_create(created)


def save(obj, fields: list[str]) -> None:
    """``obj.save(update_fields=fields)``; in a batch, at its ``flush`` (``updated_at`` set
    here, as ``auto_now`` would)."""
    got = _CURRENT.get()
    if got is None or not got.defer:
        obj.save(update_fields=fields)
        return
    if "updated_at" in fields:
        obj.updated_at = timezone.now()
    got.writes.append((obj, fields))


def mark() -> int:
    """Where the batch's deferred writes are (``undo`` drops what came after)."""
    got = _CURRENT.get()
    return len(got.writes) if got is not None else 0


def undo(at: int) -> None:
    got = _CURRENT.get()
    if got is not None:
        del got.writes[at:]
