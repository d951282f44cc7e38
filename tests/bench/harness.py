"""`make bench`: each figure next to its baseline measured in the same run.

A benchmark module is ``tests/bench/bench_<name>.py`` defining ``run(report)``; it calls
``report.add(...)`` once per figure. ``python -m tests.bench.run [names...]`` runs them, prints
the table, writes BENCHMARKS.md and exits non-zero when a target is missed.
"""

import datetime as dt
import os
import platform
import statistics
from dataclasses import dataclass, field


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    target: str = ""
    ok: bool | None = None
    note: str = ""

    @property
    def ratio(self):
        if self.baseline in (None, 0):
            return None
        return self.value / self.baseline


@dataclass
class Report:
    figures: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    loads: list = field(default_factory=list)  # 1-minute load average at each figure

    def add(
        self, name, value, unit, *, baseline=None, baseline_label="", target="", ok=None, note=""
    ):
        fig = Figure(name, value, unit, baseline, baseline_label, target, ok, note)
        self.figures.append(fig)
        self.loads.append(os.getloadavg()[0])
        print(
            f"  {name}: {value:.4g} {unit}"
            + (
                f" (baseline {baseline:.4g}, ratio {fig.ratio:.3g})"
                if fig.ratio is not None
                else ""
            )
            + (f" target {target}: {'OK' if ok else 'MISSED'}" if ok is not None else ""),
            flush=True,
        )
        return fig

    @property
    def failed(self):
        return [f for f in self.figures if f.ok is False]


def machine():
    cpus = os.cpu_count()
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem = 0
    return f"{platform.machine()}, {cpus} cores, {mem:.0f} GiB, Python {platform.python_version()}"


def machine_short():
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {mem:.0f} GiB"


def p95(samples):
    if not samples:
        return float("nan")
    if len(samples) < 20:
        return max(samples)
    return statistics.quantiles(samples, n=100)[94]


DEFAULT_SCALE = 10_000


def bench_db(section):
    """The throwaway database of a section, named after the configured one
    (``bench_backline_catalog`` for ``backline``), so benches of several checkouts sharing one
    PostgreSQL do not drop each other's."""
    from django.conf import settings

    return f"bench_{settings.DATABASES['default']['NAME']}_{section}"


def scale():
    return int(os.environ.get("BENCH_SCALE", DEFAULT_SCALE))


def _marker(n):
    return f"<!-- bench scale {n} -->"


def merge_markdown(existing, md):
    """BENCHMARKS.md: the last default-scale run on top, then the last run at each other
    ``BENCH_SCALE`` in its own section (a run replaces only its own part)."""
    parts = {}
    chunks = existing.split("<!-- bench scale ")
    if chunks[0].strip():  # a file written before sections existed: the default-scale run
        parts[DEFAULT_SCALE] = chunks[0].strip("\n")
    for chunk in chunks[1:]:
        n, _, body = chunk.partition(" -->")
        if n.strip().isdigit():
            parts[int(n)] = body.strip("\n")
    parts[scale()] = md.strip("\n")
    order = [DEFAULT_SCALE] + sorted(n for n in parts if n != DEFAULT_SCALE)
    out = []
    for n in order:
        if n in parts:
            out += [_marker(n), parts[n], ""]
    return "\n".join(out)


def render_markdown(report, sections):
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    n = scale()
    title = (
        "# Backline benchmarks"
        if n == DEFAULT_SCALE
        else f"## Large catalog run: BENCH_SCALE={n} (`make bench ARGS=catalog BENCH_SCALE={n}`)"
    )
    lines = [
        title,
        "",
        f"Last run: {now} · machine: {machine()} · sections: {', '.join(sections)}"
        f" · catalog scale: {n:,} services"
        + (
            f" · load average (1 min) while measuring: {min(report.loads):.1f}–{max(report.loads):.1f}"
            if report.loads
            else ""
        ),
        "",
        "| figure | value | baseline | ratio | target | result | machine |",
        "|---|---|---|---|---|---|---|",
    ]
    box = machine_short()
    for f in report.figures:
        base = f"{f.baseline:.4g} {f.unit} ({f.baseline_label})" if f.baseline is not None else "—"
        ratio = f"{f.ratio:.3g}×" if f.ratio is not None else "—"
        result = "—" if f.ok is None else ("pass" if f.ok else "**MISSED**")
        lines.append(
            f"| {f.name} | {f.value:.4g} {f.unit} | {base} | {ratio} | {f.target or '—'} | {result} "
            f"| {box} |"
        )
    if report.errors:
        lines += ["", "## Errors", ""] + [f"- {e}" for e in report.errors]
    return "\n".join(lines) + "\n"
