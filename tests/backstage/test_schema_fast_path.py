"""The compiled (jsonschema-rs) validator only ever answers "valid" where Backstage's schemas,
run by the reference validator (jsonschema), find no problem: over every upstream example, a
generated catalog, and each of them broken in the ways descriptors are broken in practice."""

import copy
from pathlib import Path

import pytest
import yaml

from squads.backstage import schema
from squads.backstage.generate import generate_entities, generate_org_entities

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "backstage-examples"


def _examples():
    out = []
    for path in sorted(EXAMPLES.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind"):
                out.append(doc)
    return out


def _broken(doc):
    """Variants of ``doc`` the schemas refuse (or may refuse)."""
    out = []
    for path, value in (
        (("metadata", "name"), "not a valid name!"),
        (("metadata", "name"), 42),
        (("metadata", "labels"), {"bad key!": "x"}),
        (("metadata", "tags"), ["UPPER case"]),
        (("metadata", "links"), [{"title": "no url"}]),
        (("metadata", "annotations"), {"a": 1}),
        (("spec", "owner"), 7),
        (("spec", "type"), ""),
        (("spec", "lifecycle"), ["production"]),
        (("spec", "dependsOn"), "component:x"),
        (("spec", "memberOf"), [1]),
        (("spec", "children"), None),
        (("apiVersion",), "not-a-version"),
    ):
        d = copy.deepcopy(doc)
        target = d
        for key in path[:-1]:
            target = target.setdefault(key, {}) if isinstance(target, dict) else {}
        if isinstance(target, dict):
            target[path[-1]] = value
            out.append(d)
    d = copy.deepcopy(doc)
    d.get("spec", {}).clear() if isinstance(d.get("spec"), dict) else None
    out.append(d)
    return out


@pytest.mark.parametrize("source", ["examples", "generated"])
def test_fast_verdict_never_accepts_what_the_reference_refuses(source):
    docs = (
        _examples()
        if source == "examples"
        else generate_entities(300)
        + generate_org_entities(units=3, teams=10, users=10, components=50)
    )
    assert len(docs) > 100
    checked = refused = 0
    for doc in docs:
        for data in (doc, *_broken(doc)):
            reference = schema.reference_errors(data)
            fast = schema._fast_valid(schema.schema_ids(data), data)
            checked += 1
            refused += bool(reference)
            assert not (fast and reference), (data, reference)
            if not reference:
                assert schema.validate_entity(data) == []
    # the broken variants are mostly refused, and the originals all pass both ways
    assert refused > checked / 2
    assert all(
        schema._fast_valid(schema.schema_ids(d), d) for d in docs if not schema.validate_entity(d)
    )
