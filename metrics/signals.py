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


def window_bounds(ts, T, window):
    """Indices [i, j] of the samples in Prometheus 2's range [T - window, T] (closed)."""
    return bisect_left(ts, T - window), bisect_right(ts, T) - 1


def reset_corrections(vs) -> list:
    """Prefix sums of what counter resets lost: ``c[j] - c[i]`` is what Prometheus adds back
    to ``vs[j] - vs[i]`` (the value before each drop), in O(1) per window."""
    out, total = [0.0], 0.0
    for k in range(1, len(vs)):
        if vs[k] < vs[k - 1]:
            total += vs[k - 1]
        out.append(total)
    return out


def extrapolated_rate(
    ts, vs, i, j, T, window, counter=True, per_second=True, first_raw=None, corrections=None
):
    """Prometheus' ``extrapolatedRate`` (promql/functions.go, as in the 2.x Prometheus this
    project tests against) over the samples ``i..j`` of a range ``[T - window, T]``.

    Drops are counter resets (the previous value is added back). The result is extrapolated
    to the window's edges when the first/last sample lies within 1.1 average sample
    intervals of them, else by half an interval; a counter is not extrapolated below zero
    (``first_raw``: the first sample's value as the target exposed it, when ``vs`` are stored
    reset-adjusted). None below two samples."""
    if j - i < 1:
        return None
    result = vs[j] - vs[i]
    if counter and corrections is not None:
        result += corrections[j] - corrections[i]
    elif counter:
        for k in range(i + 1, j + 1):
            if vs[k] < vs[k - 1]:
                result += vs[k - 1]
    first = vs[i] if first_raw is None else first_raw
    to_start = ts[i] - (T - window)
    to_end = T - ts[j]
    sampled = ts[j] - ts[i]
    if sampled <= 0:
        return None
    average = sampled / (j - i)
    if counter and result > 0 and first >= 0:
        to_zero = sampled * (first / result)
        to_start = min(to_start, to_zero)
    threshold = average * 1.1
    interval = sampled
    interval += to_start if to_start < threshold else average / 2
    interval += to_end if to_end < threshold else average / 2
    factor = interval / sampled
    if per_second:
        factor /= window
    return result * factor


def instant_rate(ts, vs, i, j, per_second=True):
    """Prometheus' ``irate`` (``per_second``) / ``idelta`` from the last two samples."""
    if j - i < 1:
        return None
    last, previous = vs[j], vs[j - 1]
    value = last if per_second and last < previous else last - previous
    dt = ts[j] - ts[j - 1]
    if dt <= 0:
        return None
    return value / dt if per_second else value


def rate(ts, vs, times, window, first_raw=None) -> list:
    """Prometheus' ``rate()`` over ``[T - window, T]`` at each T (``extrapolated_rate``).

    ``None`` where the window holds fewer than two samples (missing series, scrape gaps).
    ``first_raw(i)`` gives sample i's value as exposed (``vs`` are stored reset-adjusted)."""
    out = []
    corrections = reset_corrections(vs)
    for T in times:
        i, j = window_bounds(ts, T, window)
        raw = first_raw(i) if first_raw is not None and j > i else None
        out.append(
            extrapolated_rate(ts, vs, i, j, T, window, first_raw=raw, corrections=corrections)
        )
    return out


def last_value(ts, vs, times, lookback) -> list:
    """The latest sample at or before T and not older than ``lookback``."""
    out = []
    for T in times:
        j = bisect_right(ts, T) - 1
        out.append(vs[j] if j >= 0 and ts[j] >= T - lookback else None)
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
    out: list = []
    for k, d in enumerate(den):
        if d is None or d <= 0:
            out.append(None)
            continue
        n = num[k] if num else None
        out.append((n or 0.0) / d)
    return out


def prepare_buckets(buckets):
    """Prometheus' bucket preparation: sorted by bound, equal bounds merged, counts made
    monotonic. None when Prometheus answers NaN whatever the quantile (no ``+Inf`` bucket,
    fewer than two buckets, no observations)."""
    if not buckets:
        return None
    bounds, counts = [], []
    for le, c in sorted(buckets, key=lambda b: b[0]):
        if bounds and bounds[-1] == le:
            counts[-1] += c
        else:
            bounds.append(le)
            counts.append(c)
    if bounds[-1] != math.inf:
        return None
    running = -math.inf
    for k, c in enumerate(counts):
        if c > running:
            running = c
        elif c < running:
            counts[k] = running
    if len(bounds) < 2 or counts[-1] == 0:
        return None
    return bounds, counts


def quantile_of(q: float, prepared) -> float:
    """``bucketQuantile`` (promql/quantile.go) on ``prepare_buckets``' answer."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    if prepared is None:
        return math.nan
    bounds, counts = prepared
    rank = q * counts[-1]
    b = bisect_left(counts, rank, 0, len(counts) - 1)
    if b == len(counts) - 1:
        return bounds[-2]
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    start, count = 0.0, counts[b]
    if b > 0:
        start = bounds[b - 1]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    try:
        return start + (bounds[b] - start) * (rank / count)
    except ZeroDivisionError:
        return math.nan  # Go: 0/0 is NaN


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus' histogram_quantile over ``[(upper_bound, cumulative_count), ...]``: NaN
    where Prometheus answers NaN (callers showing golden signals turn it into *no data*)."""
    return quantile_of(q, prepare_buckets(buckets))


def quantiles_over_time(qs, bucket_rates: dict[float, list]) -> dict[float, list]:
    """Several quantiles at once (the buckets prepared once per step); same answers as
    ``histogram_quantile``, with None (no data) where it answers NaN."""
    les = sorted(bucket_rates)
    out: dict[float, list] = {q: [] for q in qs}
    if not les:
        return out
    columns = [bucket_rates[le] for le in les]
    for k in range(len(columns[0])):
        buckets = [(le, col[k]) for le, col in zip(les, columns, strict=True) if col[k] is not None]
        prepared = prepare_buckets(buckets)
        for q in qs:
            value = quantile_of(q, prepared)
            out[q].append(None if math.isnan(value) else value)
    return out
