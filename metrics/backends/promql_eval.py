"""Evaluation of a parsed PromQL tree (``promql.parse``) at a list of times, with Prometheus'
semantics (the 2.x release this project tests against, see the README).

The evaluator reads samples through ``load(selector, start, end)``, which returns
``[RawSeries, ...]``: the storage is not its business. A sample value NaN is a staleness
marker (Backline's scraper never stores a NaN sample). Results: ``Scalar`` or ``Vector``, whose
series hold one value (or None: absent) per evaluation time.
"""

import math
from bisect import bisect_right
from dataclasses import dataclass

from metrics import signals as sig
from metrics.backends import promql as ast
from metrics.backends import promql_math as pm
from metrics.backends.base import BackendError

LOOKBACK = 300.0  # Prometheus' default lookback delta: an instant selector looks back 5 min
NAME = "__name__"


@dataclass
class RawSeries:
    labels: dict  # with __name__
    ts: list
    values: list  # as stored: counters reset-adjusted (monotonic)
    raw: list  # as the target exposed them


@dataclass
class Scalar:
    values: list


@dataclass
class Vector:
    series: list  # [(labels, [value | None per time])]


def _key(labels: dict) -> tuple:
    return tuple(sorted(labels.items()))


def _without(labels: dict, names) -> dict:
    return {k: v for k, v in labels.items() if k not in names}


class _Builder:
    """Collects (labels, time index, value) into a Vector."""

    def __init__(self, n):
        self.n, self.rows = n, {}

    def add(self, labels, k, value, what="the result"):
        key = _key(labels)
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = (labels, [None] * self.n)
        elif row[1][k] is not None:
            raise BackendError(
                f"vector cannot contain metrics with the same labelset {_text(labels)} ({what})"
            )
        row[1][k] = value

    def vector(self):
        return Vector(list(self.rows.values()))


def _unique(series: list, n: int) -> list:
    """Prometheus refuses a result with two series of the same labels at one time (e.g. a
    function dropped the metric names that told them apart)."""
    for k in range(n):
        seen = set()
        for labels, vs in series:
            if vs[k] is None:
                continue
            key = _key(labels)
            if key in seen:
                raise BackendError(
                    f"vector cannot contain metrics with the same labelset {_text(labels)}"
                )
            seen.add(key)
    return series


def _text(labels) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != NAME)
    return f"{labels.get(NAME, '')}{{{inner}}}"


def arith(op, a, b):
    """One binary operation with Go's float semantics (x/0 = ±Inf, NaN, no exceptions)."""
    try:
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return a / b
        if op == "%":
            return math.fmod(a, b)
        if op == "^":
            return math.pow(a, b)
        if op == "atan2":
            return math.atan2(a, b)
    except ZeroDivisionError:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1, b)
    except OverflowError:
        return math.inf
    except ValueError:
        return math.nan
    return {
        "==": a == b,
        "!=": a != b,
        ">": a > b,
        "<": a < b,
        ">=": a >= b,
        "<=": a <= b,
    }[op]


def _kahan_inc(inc, total, c):
    t = total + inc
    if abs(total) >= abs(inc):  # Neumaier's improvement, as Prometheus
        c += (total - t) + inc
    else:
        c += (inc - t) + total
    return t, c


def _mean(values, kahan):
    """Prometheus' incremental mean (no overflow to Inf on large values; an infinite mean stays
    infinite unless an opposite Inf or a NaN comes)."""
    mean, c = 0.0, 0.0
    for count, v in enumerate(values, 1):
        if math.isinf(mean):
            if math.isinf(v) and (mean > 0) == (v > 0):
                continue
            if not math.isinf(v) and not math.isnan(v):
                continue
        if kahan:
            mean, c = _kahan_inc(v / count - mean / count, mean, c)
        else:
            mean += v / count - mean / count
    return mean if math.isinf(mean) else mean + c


def _aggregate(op, values):
    if op == "sum":
        return sum(values)
    if op == "avg":
        return _mean(values, kahan=False)
    if op == "count":
        return float(len(values))
    if op == "group":
        return 1.0
    best = values[0]
    for v in values[1:]:  # Prometheus: a NaN is replaced by any later value
        if math.isnan(best) or (v < best if op == "min" else v > best):
            best = v
    return best


def _over_time(fn, values):
    if fn == "count_over_time":
        return float(len(values))
    if fn == "sum_over_time":
        total, c = 0.0, 0.0
        for v in values:
            total, c = _kahan_inc(v, total, c)
        return total if math.isinf(total) else total + c
    if fn == "avg_over_time":
        return _mean(values, kahan=True)
    return _aggregate("min" if fn == "min_over_time" else "max", values)


class Evaluator:
    def __init__(self, load, times):
        self.load, self.times, self.n = load, list(times), len(times)

    def evaluate(self, node):
        method = getattr(self, "_" + type(node).__name__.lower())
        return method(node)

    def _number(self, node):
        return Scalar([node.value] * self.n)

    def _string(self, node):
        raise BackendError("a string is not a valid query result or operand here")

    def _neg(self, node):
        value = self.evaluate(node.expr)
        if isinstance(value, Scalar):
            return Scalar([-v for v in value.values])
        series = [
            (_without(labels, (NAME,)), [None if v is None else -v for v in vs])
            for labels, vs in value.series
        ]
        return Vector(_unique(series, self.n))

    # --- selectors ----------------------------------------------------------------------------
    def _series(self, node, window):
        return self.load(node, self.times[0] - window, self.times[-1])

    def _selector(self, node):
        if node.range is not None:
            raise ast.UnsupportedConstruct(
                "a range vector as the result (use rate(), increase() or *_over_time() on it)"
            )
        out = []
        for s in self._series(node, LOOKBACK):
            values = []
            for T in self.times:
                j = bisect_right(s.ts, T) - 1
                ok = j >= 0 and s.ts[j] >= T - LOOKBACK and not math.isnan(s.raw[j])
                values.append(s.raw[j] if ok else None)
            if any(v is not None for v in values):
                out.append((s.labels, values))
        return Vector(out)

    def _range_function(self, fn, node):
        window = node.range
        out = []
        for s in self._series(node, window):
            keep = [k for k, v in enumerate(s.raw) if not math.isnan(v)]  # drop stale markers
            ts = [s.ts[k] for k in keep]
            vs = [s.values[k] for k in keep]
            raw = [s.raw[k] for k in keep]
            values = []
            corrections = sig.reset_corrections(vs) if fn in ("rate", "increase") else None
            for T in self.times:
                i, j = sig.window_bounds(ts, T, window)
                values.append(self._window_value(fn, ts, vs, raw, i, j, T, window, corrections))
            if any(v is not None for v in values):
                keep_name = fn == "last_over_time"  # Prometheus keeps the name for this one
                out.append((s.labels if keep_name else _without(s.labels, (NAME,)), values))
        return Vector(_unique(out, self.n))

    @staticmethod
    def _window_value(fn, ts, vs, raw, i, j, T, window, corrections=None):
        if fn in ("rate", "increase"):
            first = raw[i] if j > i else None
            per_second = fn == "rate"
            return sig.extrapolated_rate(
                ts,
                vs,
                i,
                j,
                T,
                window,
                per_second=per_second,
                first_raw=first,
                corrections=corrections,
            )
        if fn == "delta":
            return sig.extrapolated_rate(ts, raw, i, j, T, window, counter=False, per_second=False)
        if fn == "irate":
            return sig.instant_rate(ts, vs, i, j)
        if fn == "idelta":
            return sig.instant_rate(ts, raw, i, j, per_second=False)
        if j < i:
            return None
        values = raw[i : j + 1]
        if fn in ("changes", "resets"):
            return pm.changes(values) if fn == "changes" else pm.resets(values)
        if fn in ("last_over_time", "present_over_time"):
            return values[-1] if fn == "last_over_time" else 1.0
        return _over_time(fn, values)

    # --- functions ----------------------------------------------------------------------------
    def _call(self, node):
        fn = node.fn
        if ast.FUNCTIONS[fn] == "m":
            return self._range_function(fn, node.args[0])
        if fn == "time":
            return Scalar(list(self.times))
        if fn == "pi":
            return Scalar([math.pi] * self.n)
        if fn == "vector":
            return Vector([({}, self._scalar(node.args[0], fn))])
        if fn == "histogram_quantile":
            return self._histogram_quantile(node)
        arg = self.evaluate(node.args[0])
        if not isinstance(arg, Vector):
            raise BackendError(f"{fn}() needs an instant vector argument")
        if fn == "scalar":
            out = []
            for k in range(self.n):
                present = [vs[k] for _, vs in arg.series if vs[k] is not None]
                out.append(present[0] if len(present) == 1 else math.nan)
            return Scalar(out)
        params = [self._scalar(a, fn) for a in node.args[1:]]
        if fn == "clamp":
            keep = [not hi < lo for lo, hi in zip(*params, strict=True)]  # else: no result
            params.append(keep)

        def apply(k, v):
            if v is None:
                return None
            if fn == "round":
                return pm.round_to(v, params[0][k] if params else 1.0)
            if fn == "clamp":
                return pm.clamp(v, params[0][k], params[1][k]) if params[2][k] else None
            if fn in ("clamp_min", "clamp_max"):
                return (pm.go_max if fn == "clamp_min" else pm.go_min)(v, params[0][k])
            return pm.simple(fn, v)

        series = [
            (_without(lb, (NAME,)), [apply(k, v) for k, v in enumerate(vs)])
            for lb, vs in arg.series
        ]
        return Vector(_unique([s for s in series if any(v is not None for v in s[1])], self.n))

    def _scalar(self, node, fn) -> list:
        value = self.evaluate(node)
        if not isinstance(value, Scalar):
            raise BackendError(f"{fn}() needs a number (a scalar) there, not an instant vector")
        return list(value.values)

    def _histogram_quantile(self, node):
        q = self.evaluate(node.args[0])
        vector = self.evaluate(node.args[1])
        if not isinstance(q, Scalar) or not isinstance(vector, Vector):
            raise BackendError("histogram_quantile() takes a number and an instant vector")
        groups: dict = {}
        for labels, vs in vector.series:
            try:
                le = float(labels.get("le", ""))
            except ValueError:
                continue  # Prometheus skips series without a parsable `le`
            rest = _without(labels, (NAME, "le"))
            # the metric name is part of the group: two histograms are never merged
            group = (_key(rest), labels.get(NAME))
            groups.setdefault(group, (rest, []))[1].append((le, vs))
        out = _Builder(self.n)
        for rest, buckets in groups.values():
            for k in range(self.n):
                present = [(le, vs[k]) for le, vs in buckets if vs[k] is not None]
                if present:
                    out.add(rest, k, sig.histogram_quantile(q.values[k], present))
        return out.vector()

    # --- aggregations -------------------------------------------------------------------------
    def _aggregate(self, node):
        value = self.evaluate(node.expr)
        if not isinstance(value, Vector):
            raise BackendError(f"{node.op}() needs an instant vector, not a number")
        groups: dict = {}
        for labels, vs in value.series:
            if node.without:
                group = _without(labels, (NAME, *node.grouping))
            else:
                group = {k: labels[k] for k in node.grouping if k in labels}
            groups.setdefault(_key(group), (group, []))[1].append(vs)
        out = []
        for group, members in groups.values():
            values = []
            for k in range(self.n):
                present = [vs[k] for vs in members if vs[k] is not None]
                values.append(_aggregate(node.op, present) if present else None)
            out.append((group, values))
        return Vector(out)

    # --- binary operators ---------------------------------------------------------------------
    def _binary(self, node):
        lhs, rhs = self.evaluate(node.lhs), self.evaluate(node.rhs)
        op = node.op
        if op in ("and", "or", "unless"):
            if not (isinstance(lhs, Vector) and isinstance(rhs, Vector)):
                raise BackendError(f"set operator {op!r} needs instant vectors on both sides")
            return self._set_op(node, lhs, rhs)
        if isinstance(lhs, Scalar) and isinstance(rhs, Scalar):
            if op in ast.COMPARISONS and not node.bool_mode:
                raise BackendError("comparisons between scalars must use the bool modifier")
            return Scalar(
                [float(arith(op, a, b)) for a, b in zip(lhs.values, rhs.values, strict=True)]
            )
        if isinstance(lhs, Vector) and isinstance(rhs, Vector):
            return self._vector_vector(node, lhs, rhs)
        return self._vector_scalar(node, lhs, rhs)

    def _drops_name(self, node):
        return node.op in ("+", "-", "*", "/", "%", "^") or node.bool_mode

    def _vector_scalar(self, node, lhs, rhs):
        swap = isinstance(lhs, Scalar)
        vector, scalar = (rhs, lhs) if swap else (lhs, rhs)
        out = []
        for labels, vs in vector.series:
            values = []
            for k, v in enumerate(vs):
                s = scalar.values[k]
                values.append(
                    None if v is None else self._apply(node, *((s, v) if swap else (v, s)), v)
                )
            if any(v is not None for v in values):
                out.append(
                    (_without(labels, (NAME,)) if self._drops_name(node) else labels, values)
                )
        return Vector(_unique(out, self.n))

    @staticmethod
    def _apply(node, a, b, keep):
        """The value of ``a op b``; None when a comparison filters the sample out."""
        result = arith(node.op, a, b)
        if node.op not in ast.COMPARISONS:
            return result
        if node.bool_mode:
            return 1.0 if result else 0.0
        return keep if result else None

    def _signature(self, node, labels):
        if node.on is not None:
            return _key({k: labels[k] for k in node.on if k in labels})
        return _key(_without(labels, (NAME, *node.ignoring)))

    def _vector_vector(self, node, lhs, rhs):
        out = _Builder(self.n)
        for k in range(self.n):
            right = {}
            for labels, vs in rhs.series:
                if vs[k] is None:
                    continue
                sig_ = self._signature(node, labels)
                if sig_ in right:
                    raise BackendError(
                        f"found duplicate series for the match group {dict(sig_)} on the right "
                        "hand-side of the operation; many-to-many matching not allowed"
                    )
                right[sig_] = vs[k]
            matched = set()
            for labels, vs in lhs.series:
                sig_ = self._signature(node, labels)
                if vs[k] is None or sig_ not in right:
                    continue
                if sig_ in matched:
                    raise BackendError(
                        "multiple matches for labels: many-to-one matching must be explicit "
                        "(group_left/group_right)"
                    )
                matched.add(sig_)
                value = self._apply(node, vs[k], right[sig_], vs[k])
                if value is not None:
                    out.add(self._result_labels(node, labels), k, value)
        return out.vector()

    def _result_labels(self, node, labels):
        if self._drops_name(node):
            labels = _without(labels, (NAME,))
        if node.on is not None:
            return {k: v for k, v in labels.items() if k in node.on}
        return _without(labels, node.ignoring)

    def _set_op(self, node, lhs, rhs):
        out = _Builder(self.n)
        for k in range(self.n):
            right = {self._signature(node, lb) for lb, vs in rhs.series if vs[k] is not None}
            left = set()
            for labels, vs in lhs.series:
                if vs[k] is None:
                    continue
                sig_ = self._signature(node, labels)
                left.add(sig_)
                if (node.op == "and") == (sig_ in right) or node.op == "or":
                    out.add(labels, k, vs[k])
            if node.op == "or":
                for labels, vs in rhs.series:
                    if vs[k] is not None and self._signature(node, labels) not in left:
                        out.add(labels, k, vs[k])
        return out.vector()
