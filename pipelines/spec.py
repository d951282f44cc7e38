"""Pipeline spec (``backline.yml``): parse, validate with line and field, match branches.

Minimal form::

    stages: [{name: build, steps: [{name: compile, run: "make"}]}]

Full form::

    timeout: 10m            # default step timeout (seconds, or 30s / 10m / 1h); default 1h
    branches: [main, "release/*"]       # or {include: [...], exclude: [...]}; default: all
    env: {CI_FLAVOUR: backline}
    stages:
      - name: build
        steps:
          - name: compile
            run: make
            env: {GOFLAGS: -mod=vendor}
            timeout: 120
            secrets: [NPM_TOKEN]      # pipeline secrets of the service, as env variables
            network: none             # isolated (default: outbound only), none, or host
            limits: {memory: 1g}      # per step, over the top-level limits

Sandbox limits (top level and per step; never above the installation's maximum)::

    limits: {memory: 2g, cpu_seconds: 600, processes: 256, file_size: 1g, disk: 5g}
    network: isolated   # outbound only, never the host's loopback or own addresses (default);
                        # none: no network; host: only where BACKLINE_SANDBOX_HOST_NETWORK=1
"""

import fnmatch
import re
from dataclasses import dataclass

import yaml
from django.conf import settings

from portal import safeparse
from portal.sandbox import NETWORKS, Limits, host_network_refusal

SPEC_FILENAMES = ("backline.yml", "backline.yaml", ".backline.yml")
DEFAULT_TIMEOUT = 3600.0
MAX_TIMEOUT = 24 * 3600.0
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,99}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$")
# release: a canary release; approval: a person decides; jenkins: a Jenkins job's build
STEP_KINDS = ("run", "release", "approval", "jenkins")

TOP_KEYS = {
    "stages",
    "jobs",
    "schedules",
    "timeout",
    "default_timeout",
    "branches",
    "env",
    "name",
    "version",
    "limits",
    "network",
    "pull_request",
}
STAGE_KEYS = {"name", "steps"}
STEP_KEYS = {"name", "run", "env", "timeout", "secrets", "kind", "release", "limits", "network"}
STEP_KEYS |= {"approval", "jenkins"}  # issue 18: pipelines.approvals, pipelines.jenkins
RELEASE_KEYS = {"environment", "version"}


class SpecError(ValueError):
    def __init__(self, message, line=None, field=""):
        self.message = message
        self.line = line
        self.field = field
        where = [w for w in (f"line {line}" if line is not None else "", field) if w]
        super().__init__(f"{', '.join(where)}: {message}" if where else message)

    def as_dict(self):
        return {"message": self.message, "line": self.line, "field": self.field}


@dataclass
class Spec:
    data: dict

    @property
    def stages(self):
        return self.data["stages"]

    def steps(self):
        """(stage_index, stage_name, step) in order."""
        for si, stage in enumerate(self.stages):
            for step in stage["steps"]:
                yield si, stage["name"], step

    def branch_matches(self, branch: str) -> bool:
        return branch_matches(self.data.get("branches"), branch)

    def secret_names(self):
        return sorted({n for _si, _s, step in self.steps() for n in step["secrets"]})


def branch_matches(branches, branch: str) -> bool:
    if not branches:
        return True
    include = branches.get("include") or []
    exclude = branches.get("exclude") or []
    if include and not any(fnmatch.fnmatchcase(branch, p) for p in include):
        return False
    return not any(fnmatch.fnmatchcase(branch, p) for p in exclude)


def _line(node):
    return node.start_mark.line + 1 if node is not None else None


def _scalar(node, field, kinds=("str",)):
    if not isinstance(node, yaml.ScalarNode):
        raise SpecError(f"expected {' or '.join(kinds)}, got a {_kind(node)}", _line(node), field)
    return yaml.safe_load(yaml.serialize(node))


def _kind(node):
    if isinstance(node, yaml.MappingNode):
        return "mapping"
    if isinstance(node, yaml.SequenceNode):
        return "list"
    return "value"


def _mapping(node, field, allowed, required=(), label=""):
    """The keys of a mapping node, each allowed and once; the ``required`` ones present."""
    if not isinstance(node, yaml.MappingNode):
        raise SpecError(f"expected a mapping, got a {_kind(node)}", _line(node), field)
    out = {}
    for knode, vnode in node.value:
        key = knode.value if isinstance(knode, yaml.ScalarNode) else None
        if key not in allowed:
            raise SpecError(
                f"unknown key {key!r} (allowed: {', '.join(sorted(allowed))})",
                _line(knode),
                f"{field}.{key}" if field else str(key),
            )
        if key in out:
            raise SpecError(f"duplicate key {key!r}", _line(knode), f"{field}.{key}".lstrip("."))
        out[key] = vnode
    for need in required:
        if need not in out:
            raise SpecError(f"required: {label}{need}", _line(node), f"{field}.{need}")
    return out


def _str(node, field, required=True):
    value = _scalar(node, field)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise SpecError("must not be empty", _line(node), field)
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise SpecError("expected a string", _line(node), field)
    return str(value)


def _timeout(node, field):
    value = _scalar(node, field, ("number of seconds", "duration like 10m"))
    if isinstance(value, bool):
        raise SpecError("expected seconds or a duration like 30s, 10m, 1h", _line(node), field)
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = DURATION_RE.match(str(value or ""))
        if not m:
            raise SpecError(
                f"{value!r} is not a duration (use seconds, or 30s, 10m, 1h)", _line(node), field
            )
        seconds = float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]
    if seconds <= 0 or seconds > MAX_TIMEOUT:
        raise SpecError(
            f"must be between 1 second and {int(MAX_TIMEOUT)} seconds", _line(node), field
        )
    return seconds


def _env(node, field):
    if not isinstance(node, yaml.MappingNode):
        raise SpecError(
            f"expected a mapping of NAME: value, got a {_kind(node)}", _line(node), field
        )
    env = {}
    for knode, vnode in node.value:
        name = knode.value if isinstance(knode, yaml.ScalarNode) else ""
        if not ENV_NAME_RE.match(name or ""):
            raise SpecError(
                f"{name!r} is not a valid variable name", _line(knode), f"{field}.{name}"
            )
        value = _scalar(vnode, f"{field}.{name}")
        env[name] = (
            "" if value is None else (str(value).lower() if isinstance(value, bool) else str(value))
        )
    return env


def _name_list(node, field, pattern, what):
    if isinstance(node, yaml.ScalarNode):
        items = [node]
    elif isinstance(node, yaml.SequenceNode):
        items = node.value
    else:
        raise SpecError(f"expected a list of {what}", _line(node), field)
    out = []
    for i, item in enumerate(items):
        value = _str(item, f"{field}[{i}]")
        if pattern is not None and not pattern.match(value):
            raise SpecError(f"{value!r} is not a valid {what[:-1]}", _line(item), f"{field}[{i}]")
        out.append(value)
    return out


def _branches(node):
    if not isinstance(node, yaml.MappingNode):
        return {"include": _name_list(node, "branches", None, "patterns"), "exclude": []}
    keys = _mapping(node, "branches", {"include", "exclude"})
    return {
        part: _name_list(keys[part], f"branches.{part}", None, "patterns") if part in keys else []
        for part in ("include", "exclude")
    }


def _limits(node, field):
    keys = _mapping(node, field, set(Limits.FIELDS))
    out = {}
    for name, vnode in keys.items():
        value = _scalar(vnode, f"{field}.{name}")
        try:
            out[name] = Limits.parse(name, value)
        except ValueError as exc:
            raise SpecError(str(exc), _line(vnode), f"{field}.{name}") from None
    return out


def _sandbox(keys, field) -> dict:
    """``limits`` and ``network`` of the top level or of a step."""
    out = {}
    if "limits" in keys:
        out["limits"] = _limits(keys["limits"], f"{field}.limits".lstrip("."))
    if "network" in keys:
        where = f"{field}.network".lstrip(".")
        value = _str(keys["network"], where)
        if value not in NETWORKS:
            raise SpecError(
                f"unknown network {value!r} (allowed: {', '.join(NETWORKS)})",
                _line(keys["network"]),
                where,
            )
        if value == "host" and not settings.SANDBOX_HOST_NETWORK:
            raise SpecError(host_network_refusal(), _line(keys["network"]), where)
        out["network"] = value
    return out


def parse(text: str) -> Spec:
    """Parse and validate; raise SpecError naming the line and field at fault."""
    root = _compose(text)
    top = _mapping(root, "", TOP_KEYS)
    data = {"timeout": DEFAULT_TIMEOUT, "branches": None, "env": {}, "stages": []}
    for key in ("timeout", "default_timeout"):
        if key in top:
            data["timeout"] = _timeout(top[key], key)
    if "branches" in top:
        data["branches"] = _branches(top["branches"])
    if "env" in top:
        data["env"] = _env(top["env"], "env")
    data.update(_sandbox(top, ""))
    if "pull_request" in top:
        data["pull_request"] = pull_request_filter(top["pull_request"])
    if "schedules" in top:
        from pipelines.schedules import parse_schedules  # builds on this module's helpers

        data["schedules"] = parse_schedules(top["schedules"])
    if "jobs" in top:
        return Spec({**data, **_jobs_form(top)})
    if "stages" not in top:
        raise SpecError("required: a list of stages", _line(root), "stages")
    stages_node = top["stages"]
    if not isinstance(stages_node, yaml.SequenceNode) or not stages_node.value:
        raise SpecError("must be a non-empty list of stages", _line(stages_node), "stages")
    seen_stages: set[str] = set()
    for si, snode in enumerate(stages_node.value):
        data["stages"].append(_stage(snode, f"stages[{si}]", seen_stages))
    return Spec(data)


def _jobs_form(top) -> dict:
    """``jobs:`` (pipelines.jobspec): each job is also a stage, so that every reader of
    ``stages`` (steps, secrets) sees its steps."""
    from pipelines.jobspec import parse_jobs  # jobspec builds on this module's helpers

    if "stages" in top:
        raise SpecError("use either stages or jobs, not both", _line(top["stages"]), "stages")
    jobs = parse_jobs(top["jobs"])
    return {"jobs": jobs, "stages": [{"name": j["name"], "steps": j["steps"]} for j in jobs]}


def _compose(text: str):
    """The YAML node tree of ``text``; SpecError if it is empty or not valid YAML."""
    if not text or not text.strip():
        raise SpecError("the spec is empty", 1, "")
    try:
        root = safeparse.compose_yaml(text)  # depth and aliases bounded
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise SpecError(
            f"not valid YAML: {exc.problem or exc.context}",
            mark.line + 1 if mark else None,
            "",
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"not valid YAML: {exc}") from None
    if root is None:
        raise SpecError("the spec is empty", 1, "")
    return root


def _stage(snode, sfield: str, seen_stages: set[str]) -> dict:
    """One stage: a unique valid name and a non-empty list of steps."""
    skeys = _mapping(snode, sfield, STAGE_KEYS)
    if "name" not in skeys:
        raise SpecError("required: the stage's name", _line(snode), f"{sfield}.name")
    sname = _str(skeys["name"], f"{sfield}.name")
    if not NAME_RE.match(sname):
        raise SpecError(
            f"{sname!r} is not a valid name (letters, digits, space, _ . -)",
            _line(skeys["name"]),
            f"{sfield}.name",
        )
    if sname in seen_stages:
        raise SpecError(f"duplicate stage name {sname!r}", _line(skeys["name"]), f"{sfield}.name")
    seen_stages.add(sname)
    if "steps" not in skeys:
        raise SpecError("required: a list of steps", _line(snode), f"{sfield}.steps")
    steps_node = skeys["steps"]
    if not isinstance(steps_node, yaml.SequenceNode) or not steps_node.value:
        raise SpecError("must be a non-empty list of steps", _line(steps_node), f"{sfield}.steps")
    steps = []
    seen_steps: set[str] = set()
    for ti, tnode in enumerate(steps_node.value):
        steps.append(_step(tnode, f"{sfield}.steps[{ti}]", sname, seen_steps))
    return {"name": sname, "steps": steps}


def _step(tnode, tfield: str, sname: str, seen_steps: set[str]) -> dict:
    """One step of stage ``sname``: a command to run or a release, and its settings."""
    tkeys = _mapping(tnode, tfield, STEP_KEYS)
    approval, jenkins = _approval(tkeys, tfield), _jenkins(tkeys, tfield)
    release = None if approval or jenkins else _release(tkeys, tnode, tfield)
    run = f"release to {release['environment']}" if release else ""
    run = run or (approval and f"approval by {approval['squad'] or 'the owning squad'}")
    run = run or (jenkins and f"jenkins job {jenkins['job']}")
    run = run or _str(tkeys["run"], f"{tfield}.run")
    name = _step_name(tkeys, tnode, tfield, run, sname, seen_steps)
    kind = _step_kind(tkeys, tfield, release)
    return {
        "name": name,
        "kind": kind,
        "run": run,
        "env": _env(tkeys["env"], f"{tfield}.env") if "env" in tkeys else {},
        "timeout": _timeout(tkeys["timeout"], f"{tfield}.timeout") if "timeout" in tkeys else None,
        **({"release": release} if release is not None else {}),
        **({"approval": approval} if approval else {}),
        **({"jenkins": jenkins} if jenkins else {}),
        "secrets": _name_list(tkeys["secrets"], f"{tfield}.secrets", ENV_NAME_RE, "secret names")
        if "secrets" in tkeys
        else [],
        **_sandbox(tkeys, tfield),
    }


def _release(tkeys, tnode, tfield: str) -> dict | None:
    """A deploy step's release (start a release, wait for its outcome); None for a run step,
    which must then have the command to run."""
    if "release" not in tkeys:
        if "run" not in tkeys:
            raise SpecError("required: the command to run", _line(tnode), f"{tfield}.run")
        return None
    if "run" in tkeys:
        raise SpecError("a step has either run or release, not both", _line(tnode), tfield)
    rkeys = _mapping(tkeys["release"], f"{tfield}.release", RELEASE_KEYS)
    if "environment" not in rkeys:
        raise SpecError(
            "required: the environment to release to",
            _line(tkeys["release"]),
            f"{tfield}.release.environment",
        )
    return {
        "environment": _str(rkeys["environment"], f"{tfield}.release.environment"),
        "version": _str(rkeys["version"], f"{tfield}.release.version")
        if "version" in rkeys
        else "",
    }


def _step_name(tkeys, tnode, tfield: str, run: str, sname: str, seen_steps: set[str]) -> str:
    """The step's name (by default the first line of its command), unique in its stage."""
    name = (
        _str(tkeys["name"], f"{tfield}.name")
        if "name" in tkeys
        else run.strip().splitlines()[0][:60]
    )
    if "name" in tkeys and not NAME_RE.match(name):
        raise SpecError(
            f"{name!r} is not a valid name (letters, digits, space, _ . -)",
            _line(tkeys["name"]),
            f"{tfield}.name",
        )
    if name in seen_steps:
        raise SpecError(
            f"duplicate step name {name!r} in stage {sname!r}",
            _line(tkeys.get("name", tnode)),
            f"{tfield}.name",
        )
    seen_steps.add(name)
    return name


def _approval(tkeys, tfield: str) -> dict | None:
    """An approval step: ``approval: {squad: <slug>}`` (or ``approval: {}``, the owning squad)."""
    if "approval" not in tkeys:
        return None
    node, where = tkeys["approval"], f"{tfield}.approval"
    for other in ("run", "release"):
        if other in tkeys:
            raise SpecError(f"a step has either approval or {other}, not both", _line(node), where)
    keys = _mapping(node, where, {"squad"}) if not _is_empty(node) else {}
    squad = _str(keys["squad"], f"{where}.squad") if "squad" in keys else ""
    return {"squad": squad, "line": _line(node), "field": f"{where}.squad"}


def _jenkins(tkeys, tfield: str) -> dict | None:
    """A Jenkins step: ``jenkins: {job: <full name>, parameters: {NAME: value}}``."""
    if "jenkins" not in tkeys:
        return None
    node, where = tkeys["jenkins"], f"{tfield}.jenkins"
    for other in ("run", "release", "approval"):
        if other in tkeys:
            raise SpecError(f"a step has either jenkins or {other}, not both", _line(node), where)
    keys = _mapping(node, where, {"job", "parameters"})
    if "job" not in keys:
        raise SpecError("required: the job's full name", _line(node), f"{where}.job")
    job = _str(keys["job"], f"{where}.job")
    params = _env(keys["parameters"], f"{where}.parameters") if "parameters" in keys else {}
    return {"job": job, "parameters": params}


def _is_empty(node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.value in ("", "~", "null")


def _step_kind(tkeys, tfield: str, release: dict | None) -> str:
    if "approval" in tkeys or "jenkins" in tkeys:
        kind = "approval" if "approval" in tkeys else "jenkins"
    elif release is not None:
        kind = "release"
    else:
        kind = _str(tkeys["kind"], f"{tfield}.kind") if "kind" in tkeys else "run"
    if kind not in STEP_KINDS:
        raise SpecError(
            f"unknown kind {kind!r} (allowed: {', '.join(STEP_KINDS)})",
            _line(tkeys["kind"]),
            f"{tfield}.kind",
        )
    return kind


# --- pull requests (issue 18): which pull requests run the pipeline ----------------------------
def pull_request_filter(node) -> dict:
    """``pull_request: false`` (no PR builds), ``true``, or ``{branches: [...] | {include,
    exclude}, cancel_previous: bool}``: base branches of the PRs that run, and whether a new
    commit cancels the PR's older runs (default ``GITHUB_PR_CANCEL_PREVIOUS``)."""
    if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":bool"):
        return {"enabled": node.value.lower() in ("true", "yes", "on"), "branches": None}
    keys = _mapping(node, "pull_request", {"branches", "cancel_previous"})
    out: dict = {"enabled": True, "branches": None}
    if "branches" in keys:
        out["branches"] = _branches(keys["branches"])
    if "cancel_previous" in keys:
        vnode = keys["cancel_previous"]
        if not (isinstance(vnode, yaml.ScalarNode) and vnode.tag.endswith(":bool")):
            raise SpecError("expected true or false", _line(vnode), "pull_request.cancel_previous")
        out["cancel_previous"] = vnode.value.lower() in ("true", "yes", "on")
    return out


def pull_request_matches(filters: dict | None, base_branch: str) -> bool:
    """Whether a PR into ``base_branch`` runs under ``filters`` (absent: every PR runs)."""
    if not filters:
        return True
    return bool(filters.get("enabled", True)) and branch_matches(
        filters.get("branches"), base_branch
    )
