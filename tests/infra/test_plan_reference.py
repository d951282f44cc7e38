"""Every plan document of terraform-json's fixtures and of Terraform's own ``show -json`` and
equivalence-test outputs (tests/data/, see their SOURCE.md), run through Backline's plan
parser. The expected figures are computed here, independently and plainly, from each file's
``resource_changes[].change.actions`` (+ ``importing`` / ``previous_address``), its output
changes and action invocations; and Terraform's own ``applyable`` when the file has it."""

import json
from pathlib import Path

import pytest

from infra.planparse import SENSITIVE, PlanParseError, parse_plan

DATA = Path(__file__).resolve().parent.parent / "data"
SUITES = {
    "terraform-json": DATA / "terraform-json-fixtures",
    "terraform show-json": DATA / "terraform-show-json",
}
FILES = sorted(p for root in SUITES.values() for p in root.rglob("*.json"))
NOT_JSON = {DATA / "terraform-json-fixtures" / "invalid" / "plan.json"}


def name(path: Path) -> str:
    return str(path.relative_to(DATA))


def is_plan(doc) -> bool:
    """A plan has planned values; ``terraform show -json`` of a state has ``values`` (or,
    for an empty state, only its format version)."""
    return isinstance(doc, dict) and "planned_values" in doc


def expected(doc: dict) -> dict:
    """The figures, one resource change at a time, written out plainly."""
    n = dict.fromkeys(
        ("add", "change", "destroy", "replace", "forget", "read", "import", "move"), 0
    )
    for rc in doc.get("resource_changes") or []:
        change = rc["change"]
        actions = change["actions"]
        if actions in (["create"], ["create", "forget"]):
            n["add"] += 1
        elif actions == ["update"]:
            n["change"] += 1
        elif actions == ["delete"] and rc["mode"] == "managed":
            n["destroy"] += 1
        elif actions in (["delete", "create"], ["create", "delete"]):
            n["replace"] += 1
        elif actions == ["read"]:
            n["read"] += 1
        if "forget" in actions:
            n["forget"] += 1
        if change.get("importing") is not None:
            n["import"] += 1
        if rc.get("previous_address") and rc["previous_address"] != rc["address"]:
            n["move"] += 1
    return n


def expected_applyable(doc: dict) -> bool:
    """Terraform's own verdict when the file has it; else Terraform's rule: a plan is worth
    applying when any resource change is not a no-op, or moves or imports something, or a
    root output changes, or an action is invoked (and planning did not fail)."""
    if "applyable" in doc:
        return doc["applyable"]
    if doc.get("errored"):
        return False
    for rc in doc.get("resource_changes") or []:
        if rc["change"]["actions"] != ["no-op"]:
            return True
        if rc.get("previous_address") or rc["change"].get("importing") is not None:
            return True
    outputs = (doc.get("output_changes") or {}).values()
    return any(o["actions"] != ["no-op"] for o in outputs) or bool(doc.get("action_invocations"))


def leaves(value, marks, hidden=False):
    """(leaf value, hidden?) for every leaf of ``value``; hidden when any of the sensitivity
    ``marks`` (before's, after's) marks it or a part of the value holding it."""
    hidden = hidden or any(m is True for m in marks)
    if isinstance(value, dict):
        items = value.items()
        sub = lambda k: tuple(m.get(k) if isinstance(m, dict) else None for m in marks)  # noqa: E731
    elif isinstance(value, list):
        items = enumerate(value)
        sub = lambda i: tuple(m[i] if isinstance(m, list) and i < len(m) else None for m in marks)  # noqa: E731
    else:
        yield value, hidden
        return
    for k, v in items:
        yield from leaves(v, sub(k), hidden)


def secrets(doc: dict) -> set[str]:
    """Strings the plan marks sensitive somewhere and never shows in clear elsewhere."""
    marked, clear = set(), set()
    changes = [rc["change"] for rc in doc.get("resource_changes") or []]
    changes += list((doc.get("output_changes") or {}).values())
    for c in changes:
        marks = (c.get("before_sensitive"), c.get("after_sensitive"))
        for side in ("before", "after"):
            for v, hidden in leaves(c.get(side), marks):
                if isinstance(v, str):
                    (marked if hidden else clear).add(v)
    return {s for s in marked - clear if len(s) >= 3}


def load(path):
    return json.loads(path.read_text())


@pytest.mark.parametrize("path", FILES, ids=name)
def test_reference_plan(path):
    if path in NOT_JSON:
        with pytest.raises(PlanParseError, match="did not return JSON"):
            parse_plan(path.read_text())
        return
    doc = load(path)
    if not is_plan(doc):
        if "values" in doc:
            with pytest.raises(PlanParseError, match="a Terraform state, not a plan"):
                parse_plan(doc)
        pytest.skip("a state document (terraform show -json of a state), not a plan")
    s = parse_plan(doc)
    want = expected(doc)
    assert {k: s[k] for k in want} == want
    assert [(m["from"], m["to"]) for m in s["moves"]] == [
        (rc["previous_address"], rc["address"])
        for rc in doc.get("resource_changes") or []
        if rc.get("previous_address") and rc["previous_address"] != rc["address"]
    ]
    applyable = expected_applyable(doc)
    assert s["applyable"] is applyable and s["has_changes"] is applyable
    if "applyable" in doc:  # Backline's own rule agrees with Terraform's verdict
        assert (
            parse_plan({k: v for k, v in doc.items() if k != "applyable"})["applyable"]
            is (doc["applyable"])
        )
    # Terraform's "Plan:" line: a replace is one to add and one to destroy
    line = (
        f"{want['add'] + want['replace']} to add, {want['change']} to change, "
        f"{want['destroy'] + want['replace']} to destroy"
    )
    assert line in s["plan_line"]
    assert ("to import" in s["plan_line"]) is (want["import"] > 0)
    # nothing marked sensitive is shown
    text = json.dumps(s)
    for secret in secrets(doc):
        assert json.dumps(secret) not in text, f"{secret!r} shown in clear"
    for o in s["outputs"]:
        if o["sensitive"]:
            assert {o["before"], o["after"]} <= {None, SENSITIVE}


def tally():
    """{suite: (plans, state documents, not JSON)}."""
    out = {}
    for suite, root in SUITES.items():
        files = sorted(root.rglob("*.json"))
        bad = [p for p in files if p in NOT_JSON]
        docs = [load(p) for p in files if p not in NOT_JSON]
        plans = sum(is_plan(d) for d in docs)
        out[suite] = (plans, len(docs) - plans, len(bad))
    return out


def test_the_suites_are_all_there():
    """Every file upstream has, nothing sampled (SOURCE.md lists the counts)."""
    assert tally() == {"terraform-json": (21, 1, 1), "terraform show-json": (72, 5, 0)}


def test_readme_states_the_pass_counts():
    readme = " ".join((DATA.parent.parent / "README.md").read_text().split())
    (tj, tj_state, tj_bad), (ts, ts_state, _) = tally().values()
    assert f"{tj} of {tj} terraform-json plans" in readme
    assert f"{ts} of {ts} Terraform show-json and equivalence-test plans" in readme
