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
