"""`make bench`: each figure next to its baseline measured in the same run.

A benchmark module is ``tests/bench/bench_<name>.py`` defining ``run(report)``; it calls
``report.add(...)`` once per figure. ``python -m tests.bench.run [names...]`` runs them, prints
the table, writes BENCHMARKS.md and exits non-zero when a target is missed.
"""

import datetime as dt
import os
import platform
import re
import signal
import statistics
import subprocess
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
    section: str = ""

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
    sections: list = field(default_factory=list)  # (section, markdown) shown before its table
    section: str = ""  # the benchmark running (``run.py`` sets it)

    def add(
        self,
        name,
        value,
        unit,
        *,
        baseline=None,
        baseline_label="",
        target="",
        ok=None,
        note="",
        load=None,
    ):
        """``load``: the 1-minute load average while it was measured (default: now)."""
        fig = Figure(name, value, unit, baseline, baseline_label, target, ok, note, self.section)
        self.figures.append(fig)
        self.loads.append(os.getloadavg()[0] if load is None else load)
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


def stop_process(proc, grace=20):
    """SIGTERM the process group a bench started (``start_new_session``), then SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


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


HEADING = re.compile(r"^## .*\(`make bench ARGS=([\w-]+)`\)", re.M)
TITLES = {
    "backstage": "Backstage import",
    "backstage_compare": "Against real Backstage",
    "catalog": "Catalog",
    "infra": "Infrastructure",
    "jobs": "Jobs",
    "monitoring": "Monitoring",
    "pipelines": "Pipelines",
}


def _blocks(part):
    """A default-scale part: (text before the first section, [(ARGS name or None, block)])."""
    heads = list(re.finditer(r"^## ", part, re.M))
    if not heads:
        return part, []
    pre, out = part[: heads[0].start()], []
    for i, h in enumerate(heads):
        block = part[h.start() : heads[i + 1].start() if i + 1 < len(heads) else len(part)]
        key = HEADING.match(block)
        out.append((key and key.group(1), block.strip("\n")))
    return pre, out


def _merge_sections(old, new):
    """The sections of ``new`` replace those of the same ``ARGS`` name in ``old``; the rest of
    ``old`` (its introduction, sections not run) stays. ``new`` without sections replaces all."""
    new_pre, new_blocks = _blocks(new)
    if old and not new_blocks and "\n" not in new_pre.strip():
        return old  # every section skipped: only the title
    if not old or not any(k for k, _ in new_blocks):
        return new
    pre, blocks = _blocks(old)
    fresh = {k: b for k, b in new_blocks if k}
    out = [fresh.pop(k) if k in fresh else b for k, b in blocks]
    out += [b for k, b in new_blocks if k in fresh]
    return "\n\n".join([(pre or new_pre).strip("\n"), *out])


def merge_markdown(existing, md):
    """BENCHMARKS.md: the last default-scale run on top, then the last run at each other
    ``BENCH_SCALE`` in its own section (a run replaces only its own part). In the default-scale
    part a run replaces only the sections it ran (``make bench ARGS=catalog`` keeps the rest)."""
    parts = {}
    chunks = existing.split("<!-- bench scale ")
    if chunks[0].strip():  # a file written before sections existed: the default-scale run
        parts[DEFAULT_SCALE] = chunks[0].strip("\n")
    for chunk in chunks[1:]:
        n, _, body = chunk.partition(" -->")
        if n.strip().isdigit():
            parts[int(n)] = body.strip("\n")
    new = md.strip("\n")
    if scale() == DEFAULT_SCALE:
        new = _merge_sections(parts.get(DEFAULT_SCALE, ""), new)
    parts[scale()] = new
    order = [DEFAULT_SCALE] + sorted(n for n in parts if n != DEFAULT_SCALE)
    out = []
    for n in order:
        if n in parts:
            out += [_marker(n), parts[n], ""]
    return "\n".join(out)


def _table(figures):
    lines = [
        "| figure | value | baseline | ratio | target | result | machine |",
        "|---|---|---|---|---|---|---|",
    ]
    box = machine_short()
    for f in figures:
        base = f"{f.baseline:.4g} {f.unit} ({f.baseline_label})" if f.baseline is not None else "—"
        ratio = f"{f.ratio:.3g}×" if f.ratio is not None else "—"
        result = "—" if f.ok is None else ("pass" if f.ok else "**MISSED**")
        lines.append(
            f"| {f.name} | {f.value:.4g} {f.unit} | {base} | {ratio} | {f.target or '—'} | {result} "
            f"| {box} |"
        )
    return lines


def _loads(loads):
    if not loads:
        return ""
    return f" · load average (1 min) while measuring: {min(loads):.1f}–{max(loads):.1f}"


def render_markdown(report, sections):
    """At the default scale one ``## <title> (`make bench ARGS=<name>`)`` section per benchmark
    that measured something (a skipped one keeps its last figures in BENCHMARKS.md); at another
    ``BENCH_SCALE`` one table."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    n = scale()
    run = f"Last run: {now} · machine: {machine()}"
    if n != DEFAULT_SCALE:
        lines = [
            f"## Large catalog run: BENCH_SCALE={n} (`make bench ARGS=catalog BENCH_SCALE={n}`)",
            "",
            f"{run} · sections: {', '.join(sections)} · catalog scale: {n:,} services"
            + _loads(report.loads),
            "",
            *_table(report.figures),
            *(line for _, block in report.sections for line in ("", block.strip("\n"))),
        ]
    else:
        lines = ["# Backline benchmarks"]
        for name in sections:
            figs = [
                (f, ld)
                for f, ld in zip(report.figures, report.loads, strict=True)
                if f.section == name
            ]
            blocks = [b for s, b in report.sections if s == name]
            errors = [e for e in report.errors if e.startswith(f"{name}: ")]
            if not (figs or blocks or errors):
                continue
            lines += [
                "",
                f"## {TITLES.get(name, name)} (`make bench ARGS={name.replace('_', '-')}`)",
                "",
                f"{run} · catalog scale: {n:,} services" + _loads([ld for _, ld in figs]),
                *(line for b in blocks for line in ("", b.strip("\n"))),
                "",
                *_table([f for f, _ in figs]),
                *(["", "Errors:", ""] + [f"- {e}" for e in errors] if errors else []),
            ]
    if report.errors and n != DEFAULT_SCALE:
        lines += ["", "## Errors", ""] + [f"- {e}" for e in report.errors]
    return "\n".join(lines) + "\n"
