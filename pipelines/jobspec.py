"""The ``jobs:`` form of ``backline.yml``: jobs that run in parallel, a ``needs:`` DAG and
``matrix:`` expansion (parsed by :func:`pipelines.spec.parse`)::

    jobs:
      lint: {steps: [{run: make lint}]}
      test:
        needs: [lint]
        matrix: {python: ["3.11", "3.12"], db: [pg, sqlite], exclude: [{python: "3.11", db: sqlite}]}
        steps: [{run: "make test"}]          # sees MATRIX_PYTHON and MATRIX_DB
      package: {needs: [test], steps: [{run: make dist}]}

A job starts when every job it needs succeeded (a need on a matrix job means every one of its
combinations); a job whose need failed is skipped. ``matrix`` is a mapping of key → list of
values, expanded to every combination, minus ``exclude`` entries (mappings: a combination that
has all of an entry's key/values is dropped), plus ``include`` entries (each one more
combination). At most :data:`MAX_MATRIX` combinations per job and :data:`MAX_JOBS` jobs in all.
"""

import itertools
import re

import yaml

from pipelines import spec as s

MAX_MATRIX = 32  # combinations of one job's matrix
MAX_JOBS = 64  # jobs of a pipeline after matrix expansion
JOB_KEYS = {"needs", "matrix", "steps", "env", "artifacts", "cache"}
ARTIFACT_KEYS = {"paths", "expire_in"}
CACHE_KEYS = {"key", "paths"}
CACHE_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
EXPIRE_RE = re.compile(r"^\s*(\d+)\s*(m|h|d|w)\s*$")
EXPIRE_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_PATHS = 50
MATRIX_KEY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")


def parse_jobs(node) -> list[dict]:
    """The expanded jobs of the ``jobs`` mapping, in a topological order; SpecError with the line
    and field at fault (unknown need, cycle, matrix over the limit, …)."""
    if not isinstance(node, yaml.MappingNode) or not node.value:
        raise s.SpecError("must be a non-empty mapping of job name → job", s._line(node), "jobs")
    raw: dict[str, dict] = {}
    for knode, vnode in node.value:
        name = knode.value if isinstance(knode, yaml.ScalarNode) else ""
        field = f"jobs.{name}"
        if not s.NAME_RE.match(name or ""):
            raise s.SpecError(
                f"{name!r} is not a valid job name (letters, digits, space, _ . -)",
                s._line(knode),
                field,
            )
        if name in raw:
            raise s.SpecError(f"duplicate job name {name!r}", s._line(knode), field)
        raw[name] = _job(vnode, field, name)
    order = _topological(raw)
    jobs: list[dict] = []
    expanded = {name: _expand(raw[name]) for name in order}
    for name in order:
        needs = [n for base in raw[name]["needs"] for n in (j["name"] for j in expanded[base])]
        for job in expanded[name]:
            jobs.append({**job, "needs": needs})
    if len(jobs) > MAX_JOBS:
        raise s.SpecError(
            f"{len(jobs)} jobs after matrix expansion; at most {MAX_JOBS}", s._line(node), "jobs"
        )
    return jobs


def _job(node, field: str, name: str) -> dict:
    keys = s._mapping(node, field, JOB_KEYS)
    if "steps" not in keys:
        raise s.SpecError("required: a list of steps", s._line(node), f"{field}.steps")
    steps_node = keys["steps"]
    if not isinstance(steps_node, yaml.SequenceNode) or not steps_node.value:
        raise s.SpecError(
            "must be a non-empty list of steps", s._line(steps_node), f"{field}.steps"
        )
    seen: set[str] = set()
    steps = [s._step(t, f"{field}.steps[{i}]", name, seen) for i, t in enumerate(steps_node.value)]
    needs_nodes = []
    if "needs" in keys:
        n = keys["needs"]
        needs_nodes = [n] if isinstance(n, yaml.ScalarNode) else list(getattr(n, "value", []))
        if not isinstance(n, yaml.ScalarNode | yaml.SequenceNode):
            raise s.SpecError("expected a list of job names", s._line(n), f"{field}.needs")
    needs = []
    for i, item in enumerate(needs_nodes):
        needs.append((s._str(item, f"{field}.needs[{i}]"), s._line(item), f"{field}.needs[{i}]"))
    return {
        "name": name,
        "line": s._line(node),
        "field": field,
        "needs_at": needs,
        "needs": [n for n, _l, _f in needs],
        "env": s._env(keys["env"], f"{field}.env") if "env" in keys else {},
        "matrix": _matrix(keys["matrix"], f"{field}.matrix") if "matrix" in keys else None,
        "steps": steps,
        "artifacts": _artifacts(keys["artifacts"], f"{field}.artifacts")
        if "artifacts" in keys
        else None,
        "cache": _cache(keys["cache"], f"{field}.cache") if "cache" in keys else None,
    }


def expire_seconds(text: str) -> int:
    """``7d`` → seconds (units m, h, d, w); ValueError otherwise."""
    m = EXPIRE_RE.match(str(text))
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration like 30m, 12h, 7d, 2w")
    return int(m.group(1)) * EXPIRE_UNITS[m.group(2)]


def _paths(node, field: str) -> list[str]:
    """Paths or glob patterns inside the job's checkout: relative, no ``..``."""
    paths = s._name_list(node, field, None, "paths")
    if not paths or len(paths) > MAX_PATHS:
        raise s.SpecError(f"expected 1 to {MAX_PATHS} paths", s._line(node), field)
    for i, path in enumerate(paths):
        if path.startswith(("/", "~")) or ".." in path.replace("\\", "/").split("/"):
            raise s.SpecError(
                f"{path!r} must be a relative path inside the checkout (no /, ~ or ..)",
                s._line(node),
                f"{field}[{i}]",
            )
    return paths


def _artifacts(node, field: str) -> dict:
    keys = s._mapping(node, field, ARTIFACT_KEYS)
    if "paths" not in keys:
        raise s.SpecError("required: the paths to keep", s._line(node), f"{field}.paths")
    out = {"paths": _paths(keys["paths"], f"{field}.paths"), "expire_in": None}
    if "expire_in" in keys:
        try:
            out["expire_in"] = expire_seconds(s._str(keys["expire_in"], f"{field}.expire_in"))
        except ValueError as exc:
            raise s.SpecError(str(exc), s._line(keys["expire_in"]), f"{field}.expire_in") from None
    return out


def _cache(node, field: str) -> dict:
    keys = s._mapping(node, field, CACHE_KEYS, required=("key", "paths"), label="the cache's ")
    key = s._str(keys["key"], f"{field}.key")
    if not CACHE_KEY_RE.match(key):
        raise s.SpecError(
            f"{key!r} is not a valid cache key (letters, digits, . _ -; at most 100)",
            s._line(keys["key"]),
            f"{field}.key",
        )
    return {"key": key, "paths": _paths(keys["paths"], f"{field}.paths")}


def _values(node, field: str) -> list[str]:
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        raise s.SpecError("expected a non-empty list of values", s._line(node), field)
    out = []
    for i, item in enumerate(node.value):
        value = s._str(item, f"{field}[{i}]")
        if len(value) > 100:
            raise s.SpecError("a matrix value is at most 100 characters", s._line(item), field)
        out.append(value.lower() if value in ("True", "False") else value)
    return out


def _combo(node, field: str) -> dict[str, str]:
    if not isinstance(node, yaml.MappingNode) or not node.value:
        raise s.SpecError("expected a mapping of key: value", s._line(node), field)
    out = {}
    for knode, vnode in node.value:
        key = knode.value if isinstance(knode, yaml.ScalarNode) else ""
        if not MATRIX_KEY_RE.match(key or ""):
            raise s.SpecError(f"{key!r} is not a valid matrix key", s._line(knode), field)
        out[key] = s._str(vnode, f"{field}.{key}")
    return out


def _matrix(node, field: str) -> dict:
    if not isinstance(node, yaml.MappingNode) or not node.value:
        raise s.SpecError("expected a mapping of key → list of values", s._line(node), field)
    axes: dict[str, list[str]] = {}
    include, exclude = [], []
    for knode, vnode in node.value:
        key = knode.value if isinstance(knode, yaml.ScalarNode) else ""
        where = f"{field}.{key}"
        if key in ("include", "exclude"):
            if not isinstance(vnode, yaml.SequenceNode):
                raise s.SpecError("expected a list of mappings", s._line(vnode), where)
            items = [_combo(v, f"{where}[{i}]") for i, v in enumerate(vnode.value)]
            (include if key == "include" else exclude).extend(items)
            continue
        if not MATRIX_KEY_RE.match(key or ""):
            raise s.SpecError(
                f"{key!r} is not a valid matrix key (a letter, then letters, digits, _)",
                s._line(knode),
                where,
            )
        if key.upper() in {k.upper() for k in axes}:
            raise s.SpecError(f"duplicate matrix key {key!r}", s._line(knode), where)
        axes[key] = _values(vnode, where)
    combos = [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]
    if not axes:
        combos = []
    combos = [c for c in combos if not any(_has(c, e) for e in exclude)]
    combos += [c for c in include if c not in combos]
    if not combos:
        raise s.SpecError("the matrix has no combination left", s._line(node), field)
    if len(combos) > MAX_MATRIX:
        raise s.SpecError(
            f"{len(combos)} combinations; a matrix has at most {MAX_MATRIX}", s._line(node), field
        )
    return {"combos": combos}


def _has(combo: dict, entry: dict) -> bool:
    return all(combo.get(k) == v for k, v in entry.items())


def _topological(raw: dict[str, dict]) -> list[str]:
    """Job names, each after those it needs; unknown needs and cycles are SpecErrors."""
    for job in raw.values():
        for need, line, field in job["needs_at"]:
            if need not in raw:
                raise s.SpecError(
                    f"unknown job {need!r} (jobs: {', '.join(sorted(raw))})", line, field
                )
            if need == job["name"]:
                raise s.SpecError(f"job {need!r} needs itself", line, field)
    order: list[str] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name, path):
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = [*path[path.index(name) :], name]
            first = raw[cycle[0]]
            at = next(a for a in first["needs_at"] if a[0] == cycle[1])
            raise s.SpecError(f"cyclic needs: {' → '.join(cycle)}", at[1], at[2])
        state[name] = 1
        for need in raw[name]["needs"]:
            visit(need, [*path, name])
        state[name] = 2
        order.append(name)

    for name in raw:
        visit(name, [])
    return order


def _expand(job: dict) -> list[dict]:
    """One job per matrix combination; MATRIX_<KEY> in every step's environment."""
    combos = job["matrix"]["combos"] if job["matrix"] else [{}]
    out: list[dict] = []
    for i, combo in enumerate(combos):
        menv = {f"MATRIX_{k.upper()}": v for k, v in combo.items()}
        label = f"{job['name']} ({', '.join(combo.values())})" if combo else job["name"]
        if label[:100] in {j["name"] for j in out}:
            label = f"{job['name']} #{i + 1}"
        steps = [{**st, "env": {**job["env"], **st["env"], **menv}} for st in job["steps"]]
        out.append(
            {
                "name": label[:100],
                "base": job["name"],
                "matrix": combo,
                "steps": steps,
                "artifacts": job["artifacts"],
                "cache": job["cache"],
            }
        )
    return out
