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

    def add(
        self, name, value, unit, *, baseline=None, baseline_label="", target="", ok=None, note=""
    ):
        fig = Figure(name, value, unit, baseline, baseline_label, target, ok, note)
        self.figures.append(fig)
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


def p95(samples):
    if not samples:
        return float("nan")
    if len(samples) < 20:
        return max(samples)
    return statistics.quantiles(samples, n=100)[94]


def render_markdown(report, sections):
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Backline benchmarks",
        "",
        f"Last run: {now} · machine: {machine()} · sections: {', '.join(sections)}",
        "",
        "| figure | value | baseline | ratio | target | result |",
        "|---|---|---|---|---|---|",
    ]
    for f in report.figures:
        base = f"{f.baseline:.4g} {f.unit} ({f.baseline_label})" if f.baseline is not None else "—"
        ratio = f"{f.ratio:.3g}×" if f.ratio is not None else "—"
        result = "—" if f.ok is None else ("pass" if f.ok else "**MISSED**")
        lines.append(
            f"| {f.name} | {f.value:.4g} {f.unit} | {base} | {ratio} | {f.target or '—'} | {result} |"
        )
    if report.errors:
        lines += ["", "## Errors", ""] + [f"- {e}" for e in report.errors]
    return "\n".join(lines) + "\n"
