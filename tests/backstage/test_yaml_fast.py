"""The importer's YAML loader builds exactly what the safe loader builds, and refuses what it
refuses, with the same error."""

import pytest
import yaml

from portal.safeparse import YamlLoader
from squads.backstage.generate import generate_catalog, generate_org_catalog
from squads.backstage.yamlfast import FastLoader

EDGES = [
    "a: 1\nb: true\nc: ~\nd: 1.5\ne: 2026-12-01\nf: 2026-12-01T10:00:00Z\ng: '1'\nh: 0x1f\n",
    "base: &b {x: 1, y: [1, two]}\nuse: *b\nmerged: {<<: *b, y: 3}\n",
    "list: &l [a, b]\nagain: *l\n---\n- &m {k: v}\n- *m\n---\nplain\n---\n",
    "1: int key\n? [a, b]\n: hmm\n",  # non-string keys: the safe constructor's error or value
    "!!set {a, b}\n",
    "!!omap [a: 1, b: 2]\n",
    "bin: !!binary aGVsbG8=\n",
    "dup: 1\ndup: 2\n",
    "tagged: !!str 123\nnum: !!int '7'\n",
    "custom: !python/object:os.system ls\n",
    "rec: &r [*r]\n",
    "kind: Component\nmetadata: {name: x, annotations: {a/b: 'c: d'}}\nspec: {owner: team-a}\n",
    "= : value key\n",
]


def _load(text, loader):
    try:
        return "ok", list(yaml.load_all(text, Loader=loader))
    except yaml.YAMLError as exc:
        return "error", type(exc).__name__, str(exc)


@pytest.mark.parametrize("text", EDGES)
def test_same_objects_and_errors_as_the_safe_loader(text):
    fast, safe = _load(text, FastLoader), _load(text, YamlLoader)
    if text.startswith("rec:"):  # a list holding itself: compare the shape
        assert fast[1][0]["rec"][0] is fast[1][0]["rec"]
        assert safe[1][0]["rec"][0] is safe[1][0]["rec"]
        return
    assert fast == safe


def test_aliases_share_one_object_as_with_the_safe_loader():
    (doc,) = yaml.load_all("base: &b {x: 1}\nuse: *b\n", Loader=FastLoader)
    assert doc["base"] is doc["use"]


def test_generated_catalogs_load_the_same():
    for text in (generate_catalog(600), generate_org_catalog(units=3, teams=30, components=200)):
        assert list(yaml.load_all(text, Loader=FastLoader)) == list(
            yaml.load_all(text, Loader=YamlLoader)
        )


# --- the limits, checked while building when no anchor can occur ---------------------------------
def _no_prepass(monkeypatch):
    from portal import safeparse

    calls = []
    real = safeparse.check_yaml
    monkeypatch.setattr(safeparse, "check_yaml", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


@pytest.mark.parametrize(
    "text, line",
    [
        ("ok: 1\n---\n" + "a: " + "[" * 70 + "]" * 70 + "\n", 3),  # flow, in the second document
        ("".join("  " * i + f"k{i}:\n" for i in range(70)) + "  " * 70 + "v\n", 65),  # block
        ("x: " + "[" * 2000 + "]" * 2000 + "\n", 1),  # beyond libyaml's own limit (1,000)
    ],
)
def test_deep_nesting_is_refused_while_building_without_the_event_pass(monkeypatch, text, line):
    from portal import safeparse

    prepass = _no_prepass(monkeypatch)
    with pytest.raises(safeparse.TooComplex, match="nested deeper than 64 levels") as info:
        list(safeparse.load_yaml_all(text, loader=FastLoader))
    assert prepass == []
    assert isinstance(info.value, yaml.MarkedYAMLError) and info.value.problem_mark.line + 1 <= line


def test_64_levels_still_load_and_the_counter_unwinds(monkeypatch):
    from portal import safeparse

    text = "[" * 64 + "]" * 64 + "\n---\n" + "[" * 64 + "]" * 64 + "\n"
    docs = list(safeparse.load_yaml_all(text, loader=FastLoader))
    assert len(docs) == 2 and docs == list(yaml.load_all(text, Loader=YamlLoader))


@pytest.mark.parametrize(
    "text, anchors",
    [
        ("a: R&D and a & b, x=1&y=2\n", False),
        ("a: &x 1\nb: *x\n", True),
        ("- &x 1\n", True),
        ("&x [a]\n", True),
        ('{"k":&x v, j: *x}\n', True),
        ("[&x a, *x]\n", True),
        ("a:\t&x 1\n", True),
        ("\ufeff&x a\n", True),
        ("a: 'quoted &x'\n", True),  # in quotes: a needless event pass, never a missed one
    ],
)
def test_texts_that_may_hold_an_anchor_get_the_event_pass(monkeypatch, text, anchors):
    from portal import safeparse

    assert safeparse.may_anchor(text) is anchors
    prepass = _no_prepass(monkeypatch)
    assert list(safeparse.load_yaml_all(text, loader=FastLoader)) == list(
        yaml.load_all(text, Loader=YamlLoader)
    )
    assert prepass == ([1] if anchors else [])


def test_an_alias_bomb_is_refused_by_the_event_pass_with_the_fast_loader():
    from portal import safeparse
    from tests.backstage.test_import_guard import BOMB

    with pytest.raises(safeparse.TooComplex, match="too many aliases"):
        list(safeparse.load_yaml_all(BOMB, loader=FastLoader))
