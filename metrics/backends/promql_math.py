"""Element-wise PromQL functions with Go's float semantics (``math.Log(0)`` is -Inf, a domain
error is NaN, an overflow is ±Inf; Python raises instead)."""

import math


def _go(f, v):
    try:
        return f(v)
    except OverflowError:
        return math.copysign(math.inf, v) if f is not math.cosh else math.inf
    except ValueError:
        if v == 0 and f in (math.log, math.log2, math.log10):
            return -math.inf
        if f is math.atanh and abs(v) == 1:
            return math.copysign(math.inf, v)
        return math.nan


def _integral(f):
    def apply(v):
        return v if math.isnan(v) or math.isinf(v) else float(f(v))

    return apply


def _sgn(v):
    return -1.0 if v < 0 else 1.0 if v > 0 else v


SIMPLE = {
    "abs": abs,
    "ceil": _integral(math.ceil),
    "floor": _integral(math.floor),
    "exp": math.exp,
    "ln": math.log,
    "log2": math.log2,
    "log10": math.log10,
    "sqrt": math.sqrt,
    "sgn": _sgn,
    "deg": lambda v: v * 180 / math.pi,
    "rad": lambda v: v * math.pi / 180,
    **{
        name: getattr(math, name)
        for name in "sin cos tan asin acos atan sinh cosh tanh asinh acosh atanh".split()
    },
}


def simple(fn: str, v: float) -> float:
    return _go(SIMPLE[fn], v)


def go_min(a, b):
    if math.isnan(a) or math.isnan(b):
        return math.nan
    return min(a, b)


def go_max(a, b):
    if math.isnan(a) or math.isnan(b):
        return math.nan
    return max(a, b)


def round_to(v, to_nearest):
    """``round(v, to_nearest)``: floor(v / to_nearest + 0.5) * to_nearest, as Prometheus
    computes it (through the inverse)."""
    inverse = 1.0 / to_nearest if to_nearest != 0 else math.copysign(math.inf, to_nearest)
    x = v * inverse + 0.5
    floored = x if math.isnan(x) or math.isinf(x) else float(math.floor(x))
    if inverse == 0:
        return math.nan if floored == 0 else math.copysign(math.inf, floored)
    return floored / inverse


def clamp(v, low, high):
    return go_max(low, go_min(high, v))


def changes(values):
    n = 0
    for prev, cur in zip(values, values[1:], strict=False):
        if cur != prev and not (math.isnan(cur) and math.isnan(prev)):
            n += 1
    return float(n)


def resets(values):
    return float(sum(1 for prev, cur in zip(values, values[1:], strict=False) if cur < prev))
