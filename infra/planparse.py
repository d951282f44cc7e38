"""Turn ``terraform show -json <planfile>`` into the summary a person wants to read.

Counts are exclusive, one bucket per resource instance change: ``add`` counts plain creates
(and create-then-forget), ``change`` updates, ``destroy`` plain deletes of managed resources,
``replace`` the delete-and-create pairs, ``forget`` the instances Terraform stops managing
without destroying them (``removed { lifecycle { destroy = false } }``), ``read`` data sources
read during apply and ``unchanged`` the no-ops. ``import`` and ``move`` count, across those
buckets, the instances being imported (``change.importing``) and moved (``previous_address``);
``moves`` lists them from → to. Terraform's own "Plan:" line (``plan_line``) counts a replace in
both add and destroy and leaves forgets out.

``applyable`` is Terraform's own verdict (the plan's ``applyable``) when the plan carries it,
else Terraform's rule: anything but a no-op, a move, an import, a root output change or an
action invocation makes a plan worth applying. A plan that is not applyable has no changes.

Values marked sensitive (``before_sensitive`` / ``after_sensitive``, sensitive outputs) are
replaced by ``(sensitive value)`` on *both* sides of a change, as Terraform prints them: a value
that only becomes sensitive (or stops being) is hidden before and after. Unknown values become
``(known after apply)``. Nothing from the plan's ``variables``, ``prior_state``,
``planned_values`` or ``configuration`` blocks is kept (they hold sensitive values in clear).
"""

import json

SENSITIVE = "(sensitive value)"
UNKNOWN = "(known after apply)"
MAX_VALUE_CHARS = 500
MAX_RESOURCES = 1000

# Backline's bucket for each ``change.actions`` Terraform writes (anything else: "change").
BUCKETS = {
    ("create",): "add",
    ("update",): "change",
    ("delete",): "destroy",
    ("delete", "create"): "replace",
    ("create", "delete"): "replace",
    ("forget",): "forget",
    ("create", "forget"): "add",
    ("read",): "read",
    ("no-op",): "unchanged",
}


class PlanParseError(ValueError):
    pass


def action_of(actions) -> str:
    actions = list(actions or [])
    if actions in (["delete", "create"], ["create", "delete"]):
        return "replace"
    if len(actions) == 1 and actions[0] in (
        "create",
        "update",
        "delete",
        "read",
        "no-op",
        "forget",
    ):
        return actions[0]
    if not actions:
        return "no-op"
    return "+".join(actions)


def merge_marks(a, b):
    """The union of two sensitivity marks (``True``, or a dict / list of nested marks)."""
    if a is True or b is True:
        return True
    if not a:
        return b
    if not b:
        return a
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: merge_marks(a.get(k), b.get(k)) for k in set(a) | set(b)}
    if isinstance(a, list) and isinstance(b, list):
        n = max(len(a), len(b))
        return [
            merge_marks(a[i] if i < len(a) else None, b[i] if i < len(b) else None)
            for i in range(n)
        ]
    return True  # the shape changed between before and after: hide the whole value


def redact(value, sensitive, unknown=False):
    """Copy ``value`` with the parts marked sensitive (``True`` or a nested mark) hidden."""
    if sensitive is True:
        return SENSITIVE
    if unknown is True:
        return UNKNOWN
    if isinstance(value, dict):
        s = sensitive if isinstance(sensitive, dict) else {}
        u = unknown if isinstance(unknown, dict) else {}
        out = {k: redact(v, s.get(k), u.get(k)) for k, v in value.items()}
        for k, mark in u.items():
            if mark is True and k not in out:
                out[k] = SENSITIVE if s.get(k) is True else UNKNOWN
        return out
    if isinstance(value, list):
        s = sensitive if isinstance(sensitive, list) else []
        u = unknown if isinstance(unknown, list) else []
        return [
            redact(v, s[i] if i < len(s) else None, u[i] if i < len(u) else None)
            for i, v in enumerate(value)
        ]
    return value


def _has_sensitive(mark) -> bool:
    if mark is True:
        return True
    if isinstance(mark, dict):
        return any(_has_sensitive(v) for v in mark.values())
    if isinstance(mark, list):
        return any(_has_sensitive(v) for v in mark)
    return False


def show(value) -> str:
    """A short human rendering of a (redacted) value."""
    if value in (SENSITIVE, UNKNOWN):
        return value
    if isinstance(value, str):
        text = json.dumps(value)
    else:
        text = json.dumps(value, sort_keys=True, separators=(", ", ": "))
    if len(text) > MAX_VALUE_CHARS:
        text = text[: MAX_VALUE_CHARS - 1] + "…"
    return text


def _paths(mark, prefix=()):
    """The paths a sensitivity mark hides."""
    if mark is True:
        yield prefix
    elif isinstance(mark, dict):
        for k, v in mark.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(mark, list):
        for i, v in enumerate(mark):
            yield from _paths(v, (*prefix, i))


def _attr_changes(change: dict) -> list[dict]:
    before = change.get("before")
    after = change.get("after")
    bs = change.get("before_sensitive")
    as_ = change.get("after_sensitive")
    au = change.get("after_unknown")
    # Hidden on one side, hidden on both: a value that becomes (or stops being) sensitive is
    # unchanged, so its clear "before" would be its clear "after".
    marks = merge_marks(bs, as_)
    before_r = redact(before, marks) if before is not None else None
    after_r = redact(after, marks, au) if after is not None else None
    if after is None and isinstance(au, dict):
        after_r = redact({}, marks, au)
    keys = set()
    if isinstance(before_r, dict):
        keys |= set(before_r)
    if isinstance(after_r, dict):
        keys |= set(after_r)
    key_marks = marks if isinstance(marks, dict) else {}
    rows = []
    for key in sorted(keys):
        b = before_r.get(key) if isinstance(before_r, dict) else None
        a = after_r.get(key) if isinstance(after_r, dict) else None
        b_raw = before.get(key) if isinstance(before, dict) else None
        a_raw = after.get(key) if isinstance(after, dict) else None
        unknown = isinstance(au, dict) and au.get(key) is True
        sensitivity_changed = set(_paths(_get(bs, key))) != set(_paths(_get(as_, key)))
        if b_raw == a_raw and not unknown and b == a and not sensitivity_changed:
            continue
        rows.append(
            {
                "name": key,
                "before": show(b) if isinstance(before_r, dict) and key in before_r else None,
                "after": show(a) if isinstance(after_r, dict) and key in after_r else None,
                "sensitive": _has_sensitive(key_marks.get(key)),
                "unknown": unknown,
                "sensitivity_changed": sensitivity_changed,
            }
        )
    return rows


def _get(mark, key):
    return mark.get(key) if isinstance(mark, dict) else None


def _resource(rc: dict) -> dict:
    change = rc.get("change") or {}
    action = action_of(change.get("actions"))
    previous = rc.get("previous_address") or ""
    return {
        "address": rc.get("address", ""),
        "module": rc.get("module_address", ""),
        "mode": rc.get("mode", "managed"),
        "type": rc.get("type", ""),
        "name": rc.get("name", ""),
        "index": rc.get("index"),
        "provider": rc.get("provider_name", ""),
        "action": action,
        "actions": list(change.get("actions") or []),
        "reason": rc.get("action_reason", ""),
        "moved_from": previous if previous != rc.get("address", "") else "",
        # the import id itself is not kept: it may be built from a sensitive value
        "importing": change.get("importing") is not None,
        "attributes": _attr_changes(change) if action not in ("no-op", "read", "forget") else [],
        "has_sensitive": _has_sensitive(change.get("before_sensitive"))
        or _has_sensitive(change.get("after_sensitive")),
    }


def _output(name: str, oc: dict) -> dict:
    action = action_of(oc.get("actions"))
    sensitive = _has_sensitive(oc.get("after_sensitive")) or _has_sensitive(
        oc.get("before_sensitive")
    )
    unknown = oc.get("after_unknown") is True
    if sensitive:
        before, after = SENSITIVE, SENSITIVE
    else:
        before = show(oc.get("before"))
        after = UNKNOWN if unknown else show(redact(oc.get("after"), None, oc.get("after_unknown")))
    return {
        "name": name,
        "action": action,
        "sensitive": sensitive,
        "unknown": unknown,
        "before": None if action == "create" or oc.get("before") is None else before,
        "after": None if action == "delete" else after,
    }


def _bucket(res: dict) -> str | None:
    """The exclusive count a resource change goes to; None for what Terraform does not show."""
    if res["mode"] == "data" and res["action"] == "delete":
        return None  # a data source leaving the configuration: nothing real is destroyed
    return BUCKETS.get(tuple(res["actions"] or ["no-op"]), "change")


def _shown(res: dict) -> bool:
    return _bucket(res) not in (None, "unchanged") or bool(res["moved_from"] or res["importing"])


def computed_applyable(
    plan: dict, resources: list, outputs: list, drift: list, refresh_only
) -> bool:
    """Terraform's rule (``Changes.Empty``, and the state comparison of refresh-only plans)."""
    if plan.get("errored"):
        return False
    if plan.get("action_invocations") or any(o["action"] != "no-op" for o in outputs):
        return True
    if refresh_only:
        return bool(drift)
    return any(r["action"] != "no-op" or r["moved_from"] or r["importing"] for r in resources)


def _drift_entry(res: dict) -> dict:
    return {"address": res["address"], "action": res["action"], "attributes": res["attributes"]}


def _refresh_only_drift(drift: list, resources: list, changed_outputs: list) -> list:
    """In a refresh-only plan every difference is a change made outside Terraform."""
    seen = {d["address"] for d in drift}
    drift = list(drift)
    for res in resources:
        if res["mode"] == "managed" and res["address"] not in seen and _shown(res):
            drift.append(_drift_entry(res))
    for o in changed_outputs:
        value = {k: o[k] for k in ("before", "after", "sensitive", "unknown")}
        drift.append(
            {
                "address": f"output.{o['name']}",
                "action": o["action"],
                "attributes": [{"name": "value", **value}],
            }
        )
    return drift


def _counts(resources: list) -> dict:
    counts = dict.fromkeys(("add", "change", "destroy", "replace", "forget", "read"), 0)
    counts["unchanged"] = 0
    for res in resources:
        bucket = _bucket(res)
        if bucket:
            counts[bucket] += 1
        if "forget" in res["actions"] and bucket != "forget":
            counts["forget"] += 1  # create-then-forget: the old object is forgotten
    return counts


def load_plan(plan) -> dict:
    if isinstance(plan, (str, bytes)):
        try:
            plan = json.loads(plan)
        except ValueError as exc:
            raise PlanParseError(f"terraform show -json did not return JSON: {exc}") from exc
    if not isinstance(plan, dict) or "format_version" not in plan:
        raise PlanParseError("not a Terraform plan: no format_version")
    return plan


def parse_plan(plan, *, refresh_only: bool = False) -> dict:
    """``plan``: the decoded JSON (dict) or its text. Returns the summary dict."""
    plan = load_plan(plan)
    if "values" in plan and "planned_values" not in plan:
        raise PlanParseError("a Terraform state, not a plan: no planned_values")
    all_resources = [_resource(rc) for rc in plan.get("resource_changes") or []]
    counts = _counts(all_resources)
    resources = [r for r in all_resources if _shown(r)]
    moves = [{"from": r["moved_from"], "to": r["address"]} for r in resources if r["moved_from"]]
    outputs = [_output(name, oc) for name, oc in sorted((plan.get("output_changes") or {}).items())]
    changed_outputs = [o for o in outputs if o["action"] != "no-op"]
    drift = [
        _drift_entry(res)
        for res in (_resource(rc) for rc in plan.get("resource_drift") or [])
        if res["action"] != "no-op"
    ]
    if refresh_only:
        drift = _refresh_only_drift(drift, all_resources, changed_outputs)
    computed = computed_applyable(plan, all_resources, outputs, drift, refresh_only)
    applyable = plan["applyable"] if isinstance(plan.get("applyable"), bool) else computed
    actions = plan.get("action_invocations") or []
    resource_changes = counts["add"] + counts["change"] + counts["destroy"] + counts["replace"]
    summary = {
        "format_version": plan.get("format_version"),
        "terraform_version": plan.get("terraform_version", ""),
        **counts,
        "import": sum(r["importing"] for r in resources),
        "move": len(moves),
        "moves": moves[:MAX_RESOURCES],
        "actions_to_invoke": len(actions),
        "resource_changes": resource_changes,
        "output_changes": len(changed_outputs),
        "applyable": applyable,
        "applyable_from": "terraform" if isinstance(plan.get("applyable"), bool) else "backline",
        "has_changes": applyable,
        "resources": resources[:MAX_RESOURCES],
        "resources_truncated": max(0, len(resources) - MAX_RESOURCES),
        "outputs": outputs,
        "drift": drift,
        "refresh_only": refresh_only,
        "errored": plan.get("errored", False),
    }
    summary["plan_line"] = plan_line(summary)
    return summary


def plan_line(s: dict) -> str:
    """Terraform's "Plan:" line for a summary (a replace is one to add and one to destroy),
    with the forgets Terraform only warns about."""
    line = "Plan: "
    if s.get("import"):
        line += f"{s['import']} to import, "
    line += (
        f"{s['add'] + s['replace']} to add, {s['change']} to change, "
        f"{s['destroy'] + s['replace']} to destroy"
    )
    if s.get("forget"):
        line += f", {s['forget']} to forget"
    line += "."
    if s.get("actions_to_invoke"):
        line += f" Actions: {s['actions_to_invoke']} to invoke."
    return line


def state_outputs(outputs: dict) -> dict:
    """{name: {"sensitive", "type", "value"}} from terraform's JSON, sensitive values hidden."""
    out = {}
    for name, o in sorted((outputs or {}).items()):
        sensitive = bool(o.get("sensitive"))
        out[name] = {
            "sensitive": sensitive,
            "type": o.get("type"),
            "value": None if sensitive else o.get("value"),
            "display": SENSITIVE if sensitive else show(o.get("value")),
        }
    return out
