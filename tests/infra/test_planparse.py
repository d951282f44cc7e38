"""The plan parser against every real plan JSON in the shared sample data."""

import json
from pathlib import Path

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
    moved_or_imported = [
        rc
        for rc in rcs
        if rc["change"]["actions"] == ["no-op"]
        and (rc.get("previous_address") or rc["change"].get("importing") is not None)
    ]
    assert len(s["resources"]) == len(rcs) - s["unchanged"] + len(moved_or_imported)
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
    assert s["applyable"] is True  # the output changes are worth applying
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


REFERENCE = Path(__file__).resolve().parent.parent / "data"


def reference(path):
    return json.loads((REFERENCE / path).read_text())


def one_change(change, **rc):
    return {
        "format_version": "1.2",
        "planned_values": {},
        "resource_changes": [
            {
                "address": "terraform_data.x",
                "mode": "managed",
                "type": "terraform_data",
                "name": "x",
                **rc,
                "change": change,
            }
        ],
    }


SECRET_VALUE = "hunter2-unchanged"


@pytest.mark.parametrize("before_sensitive", [False, {}, None, "absent"])
def test_a_value_that_becomes_sensitive_is_hidden_before_and_after(before_sensitive):
    change = {
        "actions": ["update"],
        "before": {"id": "1", "input": SECRET_VALUE},
        "after": {"id": "1", "input": SECRET_VALUE},
        "after_sensitive": {"input": True},
        "after_unknown": {},
    }
    if before_sensitive != "absent":
        change["before_sensitive"] = before_sensitive
    s = parse_plan(one_change(change))
    assert SECRET_VALUE not in json.dumps(s)
    (row,) = s["resources"][0]["attributes"]
    assert row["name"] == "input" and row["before"] == row["after"] == SENSITIVE
    assert row["sensitive"] is True and row["sensitivity_changed"] is True
    assert SENSITIVE == "(sensitive value)"  # Terraform's words


def test_a_value_that_stops_being_sensitive_stays_hidden():
    change = {
        "actions": ["update"],
        "before": {"input": SECRET_VALUE},
        "after": {"input": SECRET_VALUE},
        "before_sensitive": {"input": True},
        "after_sensitive": False,
    }
    s = parse_plan(one_change(change))
    assert SECRET_VALUE not in json.dumps(s)
    (row,) = s["resources"][0]["attributes"]
    assert row["before"] == row["after"] == SENSITIVE


def test_nested_list_and_unknown_values_turning_sensitive_are_hidden():
    change = {
        "actions": ["update"],
        "before": {
            "conf": {"password": SECRET_VALUE, "user": "u1"},
            "tags": ["plain", SECRET_VALUE + "-tag"],
            "whole": {"k": SECRET_VALUE + "-obj"},
        },
        "after": {
            "conf": {"password": SECRET_VALUE, "user": "u2"},
            "tags": ["plain", SECRET_VALUE + "-tag"],
            "whole": {"k": SECRET_VALUE + "-obj"},
        },
        "before_sensitive": {"conf": {}, "tags": [False, False], "whole": {}},
        "after_sensitive": {
            "conf": {"password": True},
            "tags": [False, True],
            "whole": True,
            "token": True,
        },
        "after_unknown": {"token": True},
    }
    s = parse_plan(one_change(change))
    assert SECRET_VALUE not in json.dumps(s)
    rows = {a["name"]: a for a in s["resources"][0]["attributes"]}
    assert rows["conf"]["before"] == '{"password": "(sensitive value)", "user": "u1"}'
    assert rows["conf"]["after"] == '{"password": "(sensitive value)", "user": "u2"}'
    assert rows["tags"]["before"] == rows["tags"]["after"] == '["plain", "(sensitive value)"]'
    assert rows["whole"]["before"] == rows["whole"]["after"] == SENSITIVE
    # unknown and sensitive: the sensitivity wins, nothing says what it will be
    assert rows["token"]["after"] == SENSITIVE and rows["token"]["unknown"] is True


def test_an_output_turning_sensitive_is_hidden_on_both_sides():
    plan = one_change({"actions": ["no-op"], "before": {}, "after": {}})
    plan["output_changes"] = {
        "o": {
            "actions": ["update"],
            "before": SECRET_VALUE,
            "after": SECRET_VALUE,
            "before_sensitive": False,
            "after_sensitive": True,
        }
    }
    s = parse_plan(plan)
    assert SECRET_VALUE not in json.dumps(s)
    assert s["outputs"][0]["before"] == s["outputs"][0]["after"] == SENSITIVE


def test_a_plan_that_only_moves_is_applyable_and_lists_the_move():
    s = parse_plan(reference("terraform-json-fixtures/moved_block/plan.json"))
    assert s["resource_changes"] == 0 and s["unchanged"] == 1
    assert s["applyable"] is True and s["has_changes"] is True
    assert s["move"] == 1 and s["moves"] == [{"from": "random_id.test", "to": "random_id.test2"}]
    (res,) = s["resources"]
    assert res["address"] == "random_id.test2" and res["moved_from"] == "random_id.test"
    assert s["plan_line"] == "Plan: 0 to add, 0 to change, 0 to destroy."


def test_a_plan_that_only_imports_is_applyable_and_counts_the_import():
    s = parse_plan(
        one_change(
            {
                "actions": ["no-op"],
                "before": {"id": "abc"},
                "after": {"id": "abc"},
                "importing": {"id": "abc"},
            }
        )
    )
    assert s["applyable"] is True and s["import"] == 1 and s["resource_changes"] == 0
    assert s["resources"][0]["importing"] is True
    assert s["plan_line"] == "Plan: 1 to import, 0 to add, 0 to change, 0 to destroy."
    imported_and_changed = parse_plan(reference("terraform-json-fixtures/identity/plan.json"))
    assert imported_and_changed["import"] == 1 and imported_and_changed["change"] == 1


def test_a_plan_that_only_invokes_actions_is_applyable():
    s = parse_plan(reference("terraform-json-fixtures/actions/plan.json"))
    assert s["resource_changes"] == 0 and s["actions_to_invoke"] == 1
    assert s["applyable"] is True
    assert s["plan_line"] == "Plan: 0 to add, 0 to change, 0 to destroy. Actions: 1 to invoke."


def test_forget_is_not_a_change():
    s = parse_plan(one_change({"actions": ["forget"], "before": {"id": "1"}, "after": None}))
    assert (s["add"], s["change"], s["destroy"], s["replace"], s["forget"]) == (0, 0, 0, 0, 1)
    assert s["resources"][0]["action"] == "forget" and s["applyable"] is True
    assert s["plan_line"] == "Plan: 0 to add, 0 to change, 0 to destroy, 1 to forget."


def test_terraforms_applyable_verdict_wins():
    plan = one_change({"actions": ["no-op"], "before": {}, "after": {}})
    assert parse_plan(plan)["applyable"] is False
    plan["applyable"] = True  # e.g. a refresh-only plan that updates the state
    assert parse_plan(plan)["applyable"] is True
    assert parse_plan(plan)["applyable_from"] == "terraform"
    errored = one_change({"actions": ["create"], "before": None, "after": {}})
    errored["errored"] = True
    assert parse_plan(errored)["applyable"] is False


def test_a_data_source_leaving_the_configuration_destroys_nothing():
    s = parse_plan(one_change({"actions": ["delete"], "before": {}, "after": None}, mode="data"))
    assert s["destroy"] == 0 and s["resources"] == []


def test_a_state_document_is_not_a_plan():
    with pytest.raises(PlanParseError, match="a Terraform state, not a plan"):
        parse_plan(reference("terraform-json-fixtures/moved_block/show.json"))
