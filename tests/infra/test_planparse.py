"""The plan parser against every real plan JSON in the shared sample data."""

import json

import pytest

from infra.planparse import SENSITIVE, UNKNOWN, PlanParseError, parse_plan, state_outputs
from tests.conftest import DATA

PLANS = DATA / "terraform-plans"
ALL = sorted(PLANS.glob("*.plan.json"))


def load(name):
    return json.loads((PLANS / name).read_text())


def test_every_sample_file_is_covered():
    assert len(ALL) >= 6, f"expected the sample plans in {PLANS}"


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_every_sample_parses_and_counts_match_resource_changes(path):
    plan = json.loads(path.read_text())
    s = parse_plan(plan)
    rcs = plan.get("resource_changes") or []
    assert s["add"] + s["change"] + s["destroy"] + s["replace"] + s["read"] + s["unchanged"] == len(
        rcs
    )
    assert len(s["resources"]) == len(rcs) - s["unchanged"]
    # nothing sensitive leaks: every value marked sensitive in the plan is hidden
    text = json.dumps(s)
    for name, oc in (plan.get("output_changes") or {}).items():
        if oc.get("after_sensitive") is True and isinstance(oc.get("after"), str):
            assert oc["after"] not in [o["after"] for o in s["outputs"] if o["name"] == name]
    assert "prior_state" not in text and "variables" not in s


def test_basic_creates_read_and_outputs():
    s = parse_plan(load("basic.plan.json"))
    assert (s["add"], s["change"], s["destroy"], s["replace"], s["read"]) == (7, 0, 0, 0, 1)
    assert s["has_changes"] is True
    actions = {r["address"]: r["action"] for r in s["resources"]}
    assert actions["null_resource.baz[2]"] == "create"
    assert actions["data.null_data_source.baz"] == "read"
    outs = {o["name"]: o for o in s["outputs"]}
    assert len(outs) == 8 and all(o["action"] == "create" for o in outs.values())
    assert outs["interpolated"]["after"] == UNKNOWN
    assert outs["string"]["after"] == '"foo"'


def test_sensitive_output_hidden_120_basic():
    s = parse_plan(load("120_basic.plan.json"))
    outs = {o["name"]: o for o in s["outputs"]}
    assert outs["foo"]["sensitive"] is True
    assert outs["foo"]["after"] == SENSITIVE
    assert '"bar"' not in json.dumps(outs["foo"])
    assert outs["map"]["after"] == '{"foo": "bar", "number": 42}'
    bar = next(r for r in s["resources"] if r["address"] == "null_resource.bar")
    assert {a["name"]: a["after"] for a in bar["attributes"]}["id"] == UNKNOWN


def test_replace_with_reason_and_sensitive_marks():
    s = parse_plan(load("action_reason.plan.json"))
    assert (s["add"], s["destroy"], s["replace"]) == (0, 0, 1)
    (res,) = s["resources"]
    assert res["action"] == "replace" and res["reason"] == "replace_because_tainted"
    assert res["actions"] == ["delete", "create"]


def test_update_lists_changed_attributes_only():
    s = parse_plan(load("identity.plan.json"))
    assert s["change"] == 1 and s["add"] == 0
    (res,) = s["resources"]
    attrs = {a["name"]: a for a in res["attributes"]}
    assert set(attrs) == {"age", "name"}
    assert attrs["age"]["before"] == "null" and attrs["age"]["after"] == "999"


def test_no_op_resources_are_counted_not_listed():
    s = parse_plan(load("has_changes.plan.json"))
    assert s["unchanged"] == 6 and s["resources"] == []
    assert s["resource_changes"] == 0
    assert s["has_changes"] is True  # output changes only
    s2 = parse_plan(load("config_resource_depends_on.plan.json"))
    assert s2["replace"] == 1 and s2["unchanged"] == 1


def test_nested_sensitive_attribute_is_hidden():
    plan = {
        "format_version": "1.0",
        "resource_changes": [
            {
                "address": "x.y",
                "mode": "managed",
                "change": {
                    "actions": ["update"],
                    "before": {"conf": {"password": "old-pw", "user": "u"}},
                    "after": {"conf": {"password": "new-pw", "user": "u"}},
                    "before_sensitive": {"conf": {"password": True}},
                    "after_sensitive": {"conf": {"password": True}},
                    "after_unknown": {},
                },
            }
        ],
        "output_changes": {
            "o": {"actions": ["update"], "before": "a", "after": "b", "after_sensitive": False},
            "p": {"actions": ["no-op"], "before": "s", "after": "s", "after_sensitive": True},
        },
    }
    s = parse_plan(plan, refresh_only=True)
    text = json.dumps(s)
    assert "old-pw" not in text and "new-pw" not in text
    assert s["resources"][0]["has_sensitive"] is True
    assert {d["address"] for d in s["drift"]} == {"x.y", "output.o"}
    assert s["output_changes"] == 1


def test_garbage_is_refused_clearly():
    with pytest.raises(PlanParseError, match="did not return JSON"):
        parse_plan("Error: nope")
    with pytest.raises(PlanParseError, match="format_version"):
        parse_plan({"hello": 1})


def test_state_outputs_hide_sensitive():
    out = state_outputs(
        {"a": {"sensitive": True, "value": "s3cr3t"}, "b": {"sensitive": False, "value": [1]}}
    )
    assert out["a"]["value"] is None and out["a"]["display"] == SENSITIVE
    assert out["b"]["display"] == "[1]"
