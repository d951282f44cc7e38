"""Turn ``terraform show -json <planfile>`` into the summary a person wants to read.

Counts are exclusive: ``add`` counts plain creates, ``destroy`` plain deletes, ``replace`` the
delete-and-create pairs (Terraform's own "Plan:" line counts a replace in both add and destroy).
Values marked sensitive (``before_sensitive`` / ``after_sensitive``, sensitive outputs) are
replaced by ``(sensitive)``; unknown values by ``(known after apply)``. Nothing from the plan's
``variables`` or ``prior_state`` blocks is kept (they hold sensitive values in clear).
"""

import json

SENSITIVE = "(sensitive)"
UNKNOWN = "(known after apply)"
MAX_VALUE_CHARS = 500
MAX_RESOURCES = 1000


class PlanParseError(ValueError):
    pass


def action_of(actions) -> str:
    actions = list(actions or [])
    if actions in (["delete", "create"], ["create", "delete"]):
        return "replace"
    if len(actions) == 1 and actions[0] in ("create", "update", "delete", "read", "no-op"):
        return actions[0]
    if not actions:
        return "no-op"
    return "+".join(actions)


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
                out[k] = UNKNOWN
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


def _attr_changes(change: dict) -> list[dict]:
    before = change.get("before")
    after = change.get("after")
    bs = change.get("before_sensitive")
    as_ = change.get("after_sensitive")
    au = change.get("after_unknown")
    before_r = redact(before, bs) if before is not None else None
    after_r = redact(after, as_, au) if after is not None else None
    if after is None and isinstance(au, dict):
        after_r = redact({}, as_, au)
    keys = set()
    if isinstance(before_r, dict):
        keys |= set(before_r)
    if isinstance(after_r, dict):
        keys |= set(after_r)
    rows = []
    for key in sorted(keys):
        b = before_r.get(key) if isinstance(before_r, dict) else None
        a = after_r.get(key) if isinstance(after_r, dict) else None
        b_raw = before.get(key) if isinstance(before, dict) else None
        a_raw = after.get(key) if isinstance(after, dict) else None
        unknown = isinstance(au, dict) and au.get(key) is True
        if b_raw == a_raw and not unknown and b == a:
            continue
        rows.append(
            {
                "name": key,
                "before": show(b) if isinstance(before_r, dict) and key in before_r else None,
                "after": show(a) if isinstance(after_r, dict) and key in after_r else None,
                "sensitive": b == SENSITIVE or a == SENSITIVE,
                "unknown": unknown,
            }
        )
    return rows


def _resource(rc: dict) -> dict:
    change = rc.get("change") or {}
    action = action_of(change.get("actions"))
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
        "attributes": _attr_changes(change) if action not in ("no-op", "read") else [],
        "has_sensitive": _has_sensitive(change.get("before_sensitive"))
        or _has_sensitive(change.get("after_sensitive")),
    }


def _output(name: str, oc: dict) -> dict:
    action = action_of(oc.get("actions"))
    sensitive = bool(oc.get("after_sensitive")) or bool(oc.get("before_sensitive"))
    unknown = oc.get("after_unknown") is True
    before = oc.get("before")
    after = oc.get("after")
    return {
        "name": name,
        "action": action,
        "sensitive": sensitive,
        "unknown": unknown,
        "before": None
        if action == "create" or before is None
        else (SENSITIVE if sensitive else show(redact(before, oc.get("before_sensitive")))),
        "after": None
        if action == "delete"
        else (
            SENSITIVE
            if sensitive
            else UNKNOWN
            if unknown
            else show(redact(after, oc.get("after_sensitive"), oc.get("after_unknown")))
        ),
    }


def parse_plan(plan, *, refresh_only: bool = False) -> dict:
    """``plan``: the decoded JSON (dict) or its text. Returns the summary dict."""
    if isinstance(plan, (str, bytes)):
        try:
            plan = json.loads(plan)
        except ValueError as exc:
            raise PlanParseError(f"terraform show -json did not return JSON: {exc}") from exc
    if not isinstance(plan, dict) or "format_version" not in plan:
        raise PlanParseError("not a Terraform plan: no format_version")
    counts = {"add": 0, "change": 0, "destroy": 0, "replace": 0, "read": 0, "unchanged": 0}
    key_for = {"create": "add", "update": "change", "delete": "destroy", "replace": "replace"}
    resources = []
    for rc in plan.get("resource_changes") or []:
        res = _resource(rc)
        if res["action"] == "no-op":
            counts["unchanged"] += 1
            continue
        if res["action"] == "read":
            counts["read"] += 1
        elif res["action"] in key_for:
            counts[key_for[res["action"]]] += 1
        else:
            counts["change"] += 1
        resources.append(res)
    outputs = [_output(name, oc) for name, oc in sorted((plan.get("output_changes") or {}).items())]
    changed_outputs = [o for o in outputs if o["action"] != "no-op"]
    drift = []
    for rc in plan.get("resource_drift") or []:
        res = _resource(rc)
        if res["action"] != "no-op":
            drift.append(
                {
                    "address": res["address"],
                    "action": res["action"],
                    "attributes": res["attributes"],
                }
            )
    if refresh_only:
        # In a refresh-only plan every difference is a change made outside Terraform.
        seen = {d["address"] for d in drift}
        for res in resources:
            if res["mode"] == "managed" and res["address"] not in seen:
                drift.append(
                    {
                        "address": res["address"],
                        "action": res["action"],
                        "attributes": res["attributes"],
                    }
                )
        for o in changed_outputs:
            drift.append(
                {
                    "address": f"output.{o['name']}",
                    "action": o["action"],
                    "attributes": [
                        {
                            "name": "value",
                            "before": o["before"],
                            "after": o["after"],
                            "sensitive": o["sensitive"],
                            "unknown": o["unknown"],
                        }
                    ],
                }
            )
    resource_changes = counts["add"] + counts["change"] + counts["destroy"] + counts["replace"]
    has_changes = bool(resource_changes or changed_outputs)
    return {
        "format_version": plan.get("format_version"),
        "terraform_version": plan.get("terraform_version", ""),
        **counts,
        "resource_changes": resource_changes,
        "output_changes": len(changed_outputs),
        "has_changes": has_changes,
        "resources": resources[:MAX_RESOURCES],
        "resources_truncated": max(0, len(resources) - MAX_RESOURCES),
        "outputs": outputs,
        "drift": drift,
        "refresh_only": refresh_only,
        "errored": plan.get("errored", False),
    }


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
