"""Prometheus' own PromQL reference cases (tests/data/promqltest, from Prometheus v2.42.0) run
through the builtin backend: series loaded into Backline's sample storage (real PostgreSQL, the
scraper's own reset-adjusting ``stored_value``), each ``eval`` evaluated by the builtin
backend and compared with the file's expected result (Prometheus' relative tolerance 1e-6).

A case is *skipped* only when the builtin backend refuses its expression as an unsupported
construct, or its data cannot exist in Backline's storage (NaN samples, which the scraper
drops); every other case is *run* and must pass. The counts per file are pinned below.
"""

import dataclasses
import math
import re
from pathlib import Path

import pytest

from metrics.backends import BackendError, promql
from metrics.backends.builtin import BuiltinBackend, _match
from metrics.backends.promql import UnsupportedConstruct, parse_duration
from metrics.backends.promql_eval import NAME, Scalar
from metrics.models import Sample, ScrapeTarget, Series
from metrics.scrape import label_key, stored_value
from tests.factories import ServiceFactory

DATA = Path(__file__).parent.parent / "data" / "promqltest"
EPSILON = 1e-6
# file: (cases run (all pass), cases in the file); a drop in either is a regression.
# In all: 325 of 325 run cases pass, of 566 (the rest use constructs outside the subset).
EXPECTED = {
    "aggregators.test": (51, 83),
    "functions.test": (95, 207),
    "histograms.test": (38, 38),
    "staleness.test": (14, 14),
    "selectors.test": (26, 31),
    "operators.test": (77, 94),
    "literals.test": (20, 20),
    "collision.test": (1, 2),
    "trig_functions.test": (1, 19),
    "at_modifier.test": (0, 33),
    "subquery.test": (2, 25),
}

_EVAL = re.compile(r"^eval(?:_(fail|ordered))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$")
_NUM = r"[+-]?(?:[Ii]nf|NaN|nan|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
_ITEM = re.compile(
    rf"^({_NUM})(?:([+-](?:[Ii]nf|NaN|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?))?x(\d+))?$"
)
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
STALE = "stale"


def number(text: str) -> float:
    low = text.lower()
    if low.lstrip("+-") == "inf":
        return -math.inf if low.startswith("-") else math.inf
    if low.lstrip("+-") == "nan":
        return math.nan
    if "0x" in low:
        return float(int(low, 16))
    return float(text)


def series_desc(line: str):
    """``name{a="b"} 1+2x3 _ stale`` → (labels with __name__, [value | None | STALE, ...])."""
    m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*", line)
    labels, pos = {}, m.end()
    if m.group(1):
        labels[NAME] = m.group(1)
    if line[pos : pos + 1] == "{":
        end = pos + 1
        while True:
            lm = _LABEL.match(line, end)
            if not lm:
                break
            labels[lm.group(1)] = re.sub(r"\\(.)", r"\1", lm.group(2))
            end = lm.end()
        assert line[end : end + 1] == "}", f"cannot read labels in {line!r}"
        pos = end + 1
    values = []
    for item in line[pos:].split():
        if item == "_":
            values.append(None)
        elif item.startswith("_x"):
            values.extend([None] * int(item[2:]))
        elif item == STALE:
            values.append(STALE)
        else:
            im = _ITEM.match(item)
            assert im, f"cannot read value {item!r} in {line!r}"
            v = number(im.group(1))
            if im.group(3) is None:
                values.append(v)
                continue
            inc = number(im.group(2)) if im.group(2) else 0.0
            for _ in range(int(im.group(3)) + 1):
                values.append(v)
                v += inc
    return labels, values


def read_cases(path: Path) -> list:
    """[("load", gap, [(labels, values)]) | ("clear",) | ("eval", mod, at, expr, expected)]"""
    lines = [
        "" if raw.strip().startswith("#") else raw.strip() for raw in path.read_text().splitlines()
    ]
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        word = line.split()[0].lower()
        body = []
        while word != "clear" and i < len(lines) and lines[i]:
            body.append(lines[i])
            i += 1
        if word == "clear":
            out.append(("clear",))
        elif word == "load":
            gap = parse_duration(line.split(None, 1)[1])
            out.append(("load", gap, [series_desc(b) for b in body]))
        else:
            m = _EVAL.match(line)
            assert m, f"{path.name}: cannot read {line!r}"
            at = parse_duration(m.group(2)) if m.group(2) not in (None, "0") else 0.0
            expected = None
            if body and re.fullmatch(_NUM, body[0]):
                expected = number(body[0])  # a scalar
            elif body:
                expected = [series_desc(b) for b in body]
            out.append(("eval", m.group(1) or "", at, m.group(3), expected))
    return out


def almost_equal(a: float, b: float) -> bool:
    if math.isnan(a) and math.isnan(b):
        return True
    if a == b:
        return True
    diff = abs(a - b)
    min_normal = 2.2250738585072014e-308
    if a == 0 or b == 0 or diff < min_normal:
        return diff < EPSILON * min_normal
    return diff / (abs(a) + abs(b)) < EPSILON


class Storage:
    """Loads promqltest series into Backline's Series/Sample tables."""

    def __init__(self, squad):
        self.service = ServiceFactory(slug="promqltest", owner=squad, metrics_urls=[])
        self.target = ScrapeTarget.objects.create(service=self.service, url="promqltest")
        self.series: dict = {}
        self.nan_series: list = []  # labels of series loaded with NaN values

    def clear(self):
        Sample.objects.all().delete()
        Series.objects.all().delete()
        self.series, self.nan_series = {}, []

    def load(self, gap, descs):
        rows, latest = [], {}
        for labels, values in descs:  # a series given twice in one load: the last one counts
            latest[_key(labels)] = (labels, values)
        for labels, values in latest.values():
            name = labels[NAME]
            plain = {k: v for k, v in labels.items() if k != NAME}
            key = label_key(plain)
            series = self.series.get((name, key))
            if series is None:
                series = Series.objects.create(
                    target=self.target,
                    service=self.service,
                    name=name,
                    kind="counter",
                    labels=plain,
                    key=key,
                )
                self.series[name, key] = series
            for k, v in enumerate(values):
                t = k * gap
                if v is None or (series.last_t is not None and t <= series.last_t):
                    continue  # omitted, or already loaded (the scraper skips such samples too)
                if v == STALE:
                    rows.append(Sample(series_id=series.pk, t=t, value=math.nan))
                elif math.isnan(v):
                    # the scraper drops NaN samples: such series cannot exist in the storage
                    if labels not in self.nan_series:
                        self.nan_series.append(labels)
                else:
                    rows.append(
                        Sample(series_id=series.pk, t=t, value=stored_value(series, v, t)[0])
                    )
            series.save()
        Sample.objects.bulk_create(rows, batch_size=2000)


def check(backend, at, expr, mod, expected) -> str | None:
    """None when the case passes, else why not. UnsupportedConstruct propagates (a skip)."""
    try:
        result = backend.query_value(expr, [at])
    except UnsupportedConstruct:
        raise
    except BackendError as exc:
        return None if mod == "fail" else f"error: {exc}"
    if mod == "fail":
        return "expected an error, got a result"
    if isinstance(result, Scalar):
        if not isinstance(expected, float):
            return f"got the scalar {result.values[0]}, expected {expected}"
        ok = almost_equal(expected, result.values[0])
        return None if ok else f"got {result.values[0]}, expected {expected}"
    got = {_key(lb): vs[0] for lb, vs in result.series if vs[0] is not None}
    if isinstance(expected, float):
        return f"got a vector {got}, expected the scalar {expected}"
    want = {_key(lb): vs[0] for lb, vs in expected or []}
    if set(got) != set(want):
        return f"series differ: got {sorted(got)}, expected {sorted(want)}"
    bad = {k: (got[k], want[k]) for k in want if not almost_equal(want[k], got[k])}
    return f"values differ (got, expected): {bad}" if bad else None


def _key(labels):
    return tuple(sorted(labels.items()))


def selectors(node):
    if isinstance(node, promql.Selector):
        yield node
    elif dataclasses.is_dataclass(node):
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            for child in value if isinstance(value, list) else [value]:
                yield from selectors(child)


def reads_nan_samples(expr, nan_series) -> bool:
    """Whether a selector of ``expr`` reads a series that was loaded with NaN values."""
    try:
        tree = promql.parse(expr)
    except promql.PromQLSyntaxError:
        return False  # check() reports it as a failure
    for sel in selectors(tree):
        matchers = list(sel.matchers) + ([(NAME, "=", sel.name)] if sel.name else [])
        if any(_match(labels, matchers) for labels in nan_series):
            return True
    return False


def run_file(path: Path, storage: Storage) -> dict:
    backend = BuiltinBackend()
    counts = {"cases": 0, "run": 0, "passed": 0, "skipped": {}, "failures": []}
    for cmd in read_cases(path):
        if cmd[0] == "clear":
            storage.clear()
            continue
        if cmd[0] == "load":
            storage.load(cmd[1], cmd[2])
            continue
        _, mod, at, expr, expected = cmd
        counts["cases"] += 1
        try:
            if reads_nan_samples(expr, storage.nan_series):
                reason = "NaN samples (the scraper drops them)"
                counts["skipped"][reason] = counts["skipped"].get(reason, 0) + 1
                continue
            failure = check(backend, at, expr, mod, expected)
        except UnsupportedConstruct as exc:
            counts["skipped"][exc.construct] = counts["skipped"].get(exc.construct, 0) + 1
            continue
        counts["run"] += 1
        if failure is None:
            counts["passed"] += 1
        else:
            counts["failures"].append(f"eval{'_' + mod if mod else ''} at {at}s {expr}: {failure}")
    return counts


def test_every_reference_file_is_run():
    assert sorted(p.name for p in DATA.glob("*.test")) == sorted(EXPECTED)
    assert sum(run for run, _ in EXPECTED.values()) == 325


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_promqltest_file(name, db, squad, capsys):
    counts = run_file(DATA / name, Storage(squad))
    with capsys.disabled():
        skipped = ", ".join(f"{k}: {v}" for k, v in sorted(counts["skipped"].items()))
        print(
            f"\npromqltest {name}: {counts['passed']} of {counts['run']} cases in the supported "
            f"subset pass ({counts['cases']} in the file; skipped: {skipped or 'none'})"
        )
    assert counts["failures"] == [], "\n".join(counts["failures"])
    assert (counts["run"], counts["cases"]) == EXPECTED[name]
