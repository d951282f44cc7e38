"""Server-drawn SVG line charts: axes with units, time ticks, a legend, gaps for no data."""

import math
from datetime import UTC, datetime
from html import escape

COLORS = {
    "stable": "#4f46e5",
    "canary": "#d97706",
    "p50": "#12805c",
    "p95": "#4f46e5",
    "p99": "#c0262d",
}
PALETTE = ["#4f46e5", "#d97706", "#12805c", "#c0262d", "#0891b2", "#7c3aed"]

W, H = 560, 200
ML, MR, MT, MB = 54, 22, 12, 38  # margins (legend sits under the x axis)


def format_value(v, unit: str) -> str:
    """A human value with its unit: 12.3 req/s, 4.2 %, 85 ms, 1.2 s."""
    if v is None:
        return "no data"
    if unit == "%":
        x = v * 100
        return f"{x:.2f} %" if x < 10 else f"{x:.1f} %"
    if unit == "s":
        if v < 1:
            ms = v * 1000
            return f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"
        return f"{v:.2f} s"
    if abs(v) >= 1000:
        return f"{v / 1000:.1f}k {unit}".strip()
    return f"{v:.2f} {unit}".strip() if v < 10 else f"{v:.1f} {unit}".strip()


def _nice_ticks(vmax: float, count: int = 4) -> list[float]:
    if vmax <= 0:
        vmax = 1.0
    raw = vmax / count
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= raw:
            step = m * mag
            break
    n = math.ceil(vmax / step)
    return [i * step for i in range(n + 1)]


def _time_ticks(t0: float, t1: float, count: int = 6) -> list[float]:
    span = max(t1 - t0, 1)
    for step in (15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400):
        if span / step <= count:
            break
    first = math.ceil(t0 / step) * step
    return [first + i * step for i in range(int((t1 - first) // step) + 1)]


def _time_label(t: float, span: float) -> str:
    d = datetime.fromtimestamp(t, UTC)
    if span > 2 * 86400:
        return d.strftime("%a %H:%M")
    if span <= 900:
        return d.strftime("%H:%M:%S") if d.second else d.strftime("%H:%M")
    return d.strftime("%H:%M")


def _decimate(points, t0, t1, plot_w):
    """Keep at most ~2 points per pixel column (min and max), preserving gaps."""
    if len(points) <= plot_w * 2:
        return points
    per = (t1 - t0) / plot_w or 1
    out, col, bucket = [], None, []

    def flush():
        if not bucket:
            return
        vals = [p for p in bucket if p[1] is not None]
        if not vals:
            out.append(bucket[0])
            return
        lo = min(vals, key=lambda p: p[1])
        hi = max(vals, key=lambda p: p[1])
        out.extend(sorted({lo, hi}))

    for p in points:
        c = int((p[0] - t0) / per)
        if c != col:
            flush()
            col, bucket = c, []
        bucket.append(p)
    flush()
    return out


class _Frame:
    """The plot area of one chart: value scale, ticks and the data-to-pixel mapping."""

    def __init__(self, unit: str, series: dict, t0: float, t1: float):
        self.unit, self.t0, self.t1 = unit, t0, t1
        self.plot_w, self.plot_h = W - ML - MR, H - MT - MB
        self.scale = 100 if unit == "%" else 1
        self.values = [v * self.scale for pts in series.values() for _, v in pts if v is not None]
        vmax = max(self.values) if self.values else 0
        if unit == "%":
            vmax = max(vmax, 1.0)
        self.ticks = _nice_ticks(vmax * 1.1 if vmax else 1)
        self.top = self.ticks[-1] or 1
        self.span = max(t1 - t0, 1)

    def x(self, t):
        return ML + (t - self.t0) / self.span * self.plot_w

    def y(self, v):
        return MT + self.plot_h - (v * self.scale) / self.top * self.plot_h


def _svg_open(title: str, chart_id: str) -> str:
    return (
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {W} {H}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg" '
        f'font-family="system-ui, sans-serif" font-size="11">'
    )


def _value_axis(f: _Frame) -> list[str]:
    """Horizontal grid lines with value labels, and the unit written beside the axis."""
    parts = []
    unit, plot_h = f.unit, f.plot_h
    tick_unit = {"%": "%", "s": "s"}.get(unit, unit)
    for tv in f.ticks:
        yy = MT + plot_h - tv / f.top * plot_h
        label = (
            "0"
            if tv == 0
            else format_value(tv / f.scale, unit)
            if unit in ("%", "s")
            else f"{tv:g}"
        )
        parts.append(
            f'<line x1="{ML}" y1="{yy:.1f}" x2="{W - MR}" y2="{yy:.1f}" stroke="#e4e7ef"/>'
            f'<text x="{ML - 6}" y="{yy + 3.5:.1f}" text-anchor="end" fill="#667085">{escape(label)}</text>'
        )
    if unit not in ("%", "s"):  # those tick labels carry their unit already
        parts.append(
            f'<text x="10" y="{MT + plot_h / 2:.0f}" fill="#667085" transform="rotate(-90 10 {MT + plot_h / 2:.0f})" '
            f'text-anchor="middle">{escape(tick_unit)}</text>'
        )
    return parts


def _time_axis(f: _Frame) -> list[str]:
    """Time ticks with labels under the plot, and the x axis line."""
    parts = []
    plot_h = f.plot_h
    for tt in _time_ticks(f.t0, f.t1):
        xx = f.x(tt)
        parts.append(
            f'<line x1="{xx:.1f}" y1="{MT + plot_h}" x2="{xx:.1f}" y2="{MT + plot_h + 4}" stroke="#9aa3b8"/>'
            f'<text x="{xx:.1f}" y="{MT + plot_h + 15}" text-anchor="middle" fill="#667085">'
            f"{_time_label(tt, f.span)}</text>"
        )
    parts.append(
        f'<line x1="{ML}" y1="{MT + plot_h}" x2="{W - MR}" y2="{MT + plot_h}" stroke="#9aa3b8"/>'
    )
    return parts


def _trace(f: _Frame, points) -> tuple[list[str], list[tuple]]:
    """The path commands of one series (a gap lifts the pen) and its isolated points."""
    d, pen = [], False
    dots: list[tuple[float, float]] = []
    run: list[tuple[float, float]] = []
    for t, v in _decimate(points, f.t0, f.t1, f.plot_w):
        if v is None:
            if len(run) == 1:
                dots.append(run[0])
            pen, run = False, []
            continue
        d.append(f"{'L' if pen else 'M'}{f.x(t):.1f} {f.y(v):.1f}")
        run.append((f.x(t), f.y(v)))
        pen = True
    if len(run) == 1:
        dots.append(run[0])
    return d, dots


def _series(f: _Frame, series: dict) -> list[str]:
    """Each series' line, its isolated points, and its legend entry with the last value."""
    parts = []
    lx: float = ML
    for i, (label, points) in enumerate(series.items()):
        color = COLORS.get(label, PALETTE[i % len(PALETTE)])
        d, dots = _trace(f, points)
        if d:
            parts.append(
                f'<path d="{" ".join(d)}" fill="none" stroke="{color}" stroke-width="1.6" '
                f'stroke-linejoin="round" data-series="{escape(label)}"/>'
            )
        for cx, cy in dots:  # isolated points (a single step of data) stay visible
            parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="2.2" fill="{color}"/>')
        last = next((v for _, v in reversed(points) if v is not None), None)
        text = f"{label}: {format_value(last, f.unit)}"
        parts.append(
            f'<rect x="{lx}" y="{H - 11}" width="10" height="3" fill="{color}"/>'
            f'<text x="{lx + 14}" y="{H - 7}" fill="#1c2233">{escape(text)}</text>'
        )
        lx += 14 + 6.2 * len(text) + 16
    return parts


def _marks(f: _Frame, marks) -> list[str]:
    """Annotations: a dashed vertical line with a short label at each mark inside the range."""
    parts = []
    for t, label in marks or ():
        if not f.t0 <= t <= f.t1:
            continue
        xx = f.x(t)
        text = label[:24]
        right = xx + 3 + 5.6 * len(text) > W - MR  # near the right edge: label on the left
        tx, anchor = (xx - 3, "end") if right else (xx + 3, "start")
        parts.append(
            f'<g class="chart-mark"><title>{escape(label)}</title>'
            f'<line x1="{xx:.1f}" y1="{MT}" x2="{xx:.1f}" y2="{MT + f.plot_h}" stroke="#7c3aed" '
            f'stroke-dasharray="3 3" stroke-width="1"/>'
            f'<text x="{tx:.1f}" y="{MT + 10}" fill="#7c3aed" font-size="10" '
            f'text-anchor="{anchor}">{escape(text)}</text></g>'
        )
    return parts


def line_chart(
    title: str, unit: str, series: dict, t0: float, t1: float, chart_id: str = "", marks=None
) -> str:
    """``series``: {legend label: [(t, value | None), ...]}; ``marks``: [(t, label)]. Returns an
    <svg> string."""
    f = _Frame(unit, series, t0, t1)
    parts = [_svg_open(title, chart_id), *_value_axis(f), *_time_axis(f), *_marks(f, marks)]
    parts += _series(f, series)
    if not f.values:
        parts.append(
            f'<text x="{ML + f.plot_w / 2:.0f}" y="{MT + f.plot_h / 2:.0f}" text-anchor="middle" '
            f'fill="#667085" font-size="13">No data in this range</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
