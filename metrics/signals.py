"""Pure functions over time series: rates, sums, ratios and histogram quantiles.

A series is a pair of lists ``(ts, vs)`` sorted by time. Counter values are monotonic (the
builtin backend stores them reset-adjusted, see ``monitoring.models``). A result is a list of
``(t, value | None)``; ``None`` means *no data* at that step and is never turned into zero.
"""

import math
from bisect import bisect_left, bisect_right


def eval_times(start: float, end: float, step: float) -> list[float]:
    """Step-aligned evaluation times in [start, end] (like Prometheus, aligned to the step)."""
    step = float(step)
    first = math.ceil(start / step) * step
    n = int((end - first) // step) + 1
    return [first + i * step for i in range(max(n, 0))]


def rate(ts, vs, times, window) -> list:
    """Per-second rate over ``(T - window, T]`` at each T: (last - first) / (t_last - t_first).

    ``None`` where the window holds fewer than two samples (missing series, scrape gaps).
    """
    out = []
    n = len(ts)
    for T in times:
        j = bisect_right(ts, T) - 1
        i = bisect_right(ts, T - window)
        if j < 0 or i >= n or j <= i:
            out.append(None)
            continue
        dt = ts[j] - ts[i]
        inc = vs[j] - vs[i]
        out.append(max(inc, 0.0) / dt if dt > 0 else None)
    return out


def last_value(ts, vs, times, lookback) -> list:
    """The latest sample at or before T and not older than ``lookback``."""
    out = []
    for T in times:
        j = bisect_right(ts, T) - 1
        out.append(vs[j] if j >= 0 and ts[j] > T - lookback else None)
    return out


def sum_values(columns: list[list]) -> list:
    """Element-wise sum of several result columns; None only where all are None."""
    if not columns:
        return []
    if len(columns) == 1:
        return list(columns[0])
    out = []
    for values in zip(*columns, strict=False):
        present = [v for v in values if v is not None]
        out.append(sum(present) if present else None)
    return out


def ratio(num: list | None, den: list) -> list:
    """num / den; None where den is missing or zero (no traffic is *no data*, not 0 %).

    A missing numerator (no error series at all) with traffic present counts as 0.
    """
    out = []
    for k, d in enumerate(den):
        if d is None or d <= 0:
            out.append(None)
            continue
        n = num[k] if num else None
        out.append((n or 0.0) / d)
    return out


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile over ``[(upper_bound, cumulative_count), ...]``."""
    if not buckets:
        return None
    buckets = sorted(buckets)
    if buckets[-1][0] != math.inf or len(buckets) < 2:
        return None
    # enforce monotonic cumulative counts (float noise / scrape skew)
    fixed, running = [], 0.0
    for le, c in buckets:
        running = max(running, c)
        fixed.append((le, running))
    total = fixed[-1][1]
    if total <= 0:
        return None  # no observations in the window: no data
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    rank = q * total
    b = bisect_left([c for _, c in fixed], rank)
    if b == len(fixed) - 1:
        return fixed[-2][0]
    if b == 0 and fixed[0][0] <= 0:
        return fixed[0][0]
    start = 0.0 if b == 0 else fixed[b - 1][0]
    below = 0.0 if b == 0 else fixed[b - 1][1]
    end, count = fixed[b][0], fixed[b][1] - below
    if count <= 0:
        return end
    return start + (end - start) * ((rank - below) / count)


def quantile_over_time(q: float, bucket_rates: dict[float, list]) -> list:
    """histogram_quantile at each step from per-``le`` rate columns (already summed by le)."""
    return quantiles_over_time((q,), bucket_rates)[q]


def quantiles_over_time(qs, bucket_rates: dict[float, list]) -> dict[float, list]:
    """Several quantiles at once (one pass over the buckets per step); same answers as
    ``histogram_quantile``."""
    les = sorted(bucket_rates)
    out = {q: [] for q in qs}
    if not les:
        return out
    columns = [bucket_rates[le] for le in les]
    n = len(columns[0])
    for k in range(n):
        buckets = [(le, col[k]) for le, col in zip(les, columns, strict=True) if col[k] is not None]
        if len(buckets) < 2 or buckets[-1][0] != math.inf:
            for q in qs:
                out[q].append(None)
            continue
        # the same steps as histogram_quantile, with the cumulative counts fixed once per step
        bounds, counts, running = [], [], 0.0
        for le, c in buckets:
            running = c if c > running else running
            bounds.append(le)
            counts.append(running)
        total = counts[-1]
        for q in qs:
            if total <= 0:
                out[q].append(None)
                continue
            rank = q * total
            b = bisect_left(counts, rank)
            if b == len(counts) - 1:
                out[q].append(bounds[-2])
            elif b == 0 and bounds[0] <= 0:
                out[q].append(bounds[0])
            else:
                start = 0.0 if b == 0 else bounds[b - 1]
                below = 0.0 if b == 0 else counts[b - 1]
                count = counts[b] - below
                out[q].append(
                    bounds[b]
                    if count <= 0
                    else start + (bounds[b] - start) * ((rank - below) / count)
                )
    return out
