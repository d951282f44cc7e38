"""Bounded parsing of outside JSON and YAML (portal.safeparse) and where it is used: API bodies,
pipeline specs, Backstage files. Git's ref rules (portal.gitref) checked against git itself."""

import json
import subprocess

import pytest
import yaml

from pipelines.spec import SpecError
from pipelines.spec import parse as parse_spec
from portal import safeparse
from portal.actors import Actor
from portal.gitref import check_ref_format, valid_branch
from squads import backstage


def alias_bomb(levels=9, width=9) -> str:
    """ "Billion laughs": each level is ``width`` aliases of the one before (9**9 nodes)."""
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def deep_yaml(depth=1000) -> str:
    return "key: " + "[" * depth + "]" * depth + "\n"


# --- JSON ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text,depth",
    [
        ("1", 0),
        ("[]", 1),
        ('{"a": [1, {"b": 2}]}', 3),
        ('["[[[[", "\\"]]]{"]', 1),
        ("[[],[[]]]", 3),
    ],
)
def test_json_depth_ignores_brackets_in_strings(text, depth):
    assert safeparse.json_depth(text) == depth == _real_depth(json.loads(text))


def _real_depth(value):
    if isinstance(value, dict | list):
        children = value.values() if isinstance(value, dict) else value
        return 1 + max((_real_depth(v) for v in children), default=0)
    return 0


def test_json_nested_too_deep_is_refused_and_64_levels_are_not():
    assert safeparse.loads_json("[" * 64 + "]" * 64) == json.loads("[" * 64 + "]" * 64)
    for body in ("[" * 65 + "]" * 65, b'{"a":' * 100_000 + b"1" + b"}" * 100_000):
        with pytest.raises(safeparse.TooComplex, match="nested deeper than 64 levels"):
            safeparse.loads_json(body)
    with pytest.raises(safeparse.TooComplex, match="larger than 10 bytes"):
        safeparse.loads_json('"0123456789"', max_bytes=10)
    with pytest.raises(ValueError):
        safeparse.loads_json("[1,")


# --- YAML ---------------------------------------------------------------------------------------
def test_a_yaml_alias_bomb_is_refused_before_anything_is_built():
    bomb = alias_bomb()
    assert len(bomb) <= 512
    with pytest.raises(safeparse.TooComplex, match="too many aliases") as info:
        list(safeparse.load_yaml_all(bomb))
    assert isinstance(info.value, yaml.YAMLError) and info.value.problem_mark is not None
    # modest alias use stays fine
    assert list(safeparse.load_yaml_all("base: &b {x: 1}\nuse: *b\n")) == [
        {"base": {"x": 1}, "use": {"x": 1}}
    ]


def test_deep_yaml_is_refused_with_its_line():
    with pytest.raises(safeparse.TooComplex, match=r"nested deeper than 64 levels \(line 1\)"):
        list(safeparse.load_yaml_all(deep_yaml()))
    block = "".join("  " * i + f"k{i}:\n" for i in range(70)) + "  " * 70 + "v\n"
    with pytest.raises(safeparse.TooComplex, match=r"nested deeper than 64 levels \(line 65\)"):
        safeparse.compose_yaml(block)


def test_a_yaml_syntax_error_is_still_reported_at_its_document():
    docs = safeparse.load_yaml_all("a: 1\n---\nb: [\n")
    assert next(docs) == {"a": 1}
    with pytest.raises(yaml.MarkedYAMLError):
        next(docs)


@pytest.mark.parametrize("text", [alias_bomb(), deep_yaml()])
def test_pipeline_specs_refuse_bombs_and_deep_nesting(text):
    spec = text + "stages: [{name: build, steps: [{name: s, run: 'true'}]}]\n"
    with pytest.raises(SpecError, match="not valid YAML: (too many aliases|nested deeper)") as info:
        parse_spec(spec)
    assert info.value.line is not None


@pytest.mark.parametrize("text", [alias_bomb(), deep_yaml()])
def test_backstage_imports_refuse_bombs_and_deep_nesting(db, text):
    doc = "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: x}\n" + text
    with pytest.raises(backstage.ImportFailed) as info:
        backstage.import_catalog([("bomb.yaml", doc)], Actor.command())
    assert "bomb.yaml: document 1: invalid YAML at line" in str(info.value)
    assert "too many aliases" in str(info.value) or "nested deeper than 64" in str(info.value)


# --- API bodies ---------------------------------------------------------------------------------
def test_a_deeply_nested_api_body_is_a_400_naming_the_limit(admin_user, api):
    api.force_login(admin_user)
    resp = api.post(
        "/api/v1/services/", b'{"a":' * 1000 + b"1" + b"}" * 1000, content_type="application/json"
    )
    assert resp.status_code == 400, resp.content
    assert resp.json()["code"] == "too_complex"
    assert "nested deeper than 64 levels" in resp.json()["message"]
    resp = api.post("/api/v1/services/", b"[1,", content_type="application/json")
    assert resp.status_code == 400 and resp.json()["code"] == "parse_error"


# --- git's ref rules ----------------------------------------------------------------------------
NAMES = [
    "main",
    "feature/ümlaut",
    "fix#12",
    "a,b=c",
    "release/1.2",
    "x+y@z",
    "wip!",
    "日本",
    "😀/x",
    "-x",
    "--upload-pack=x",
    "x-",
    "a..b",
    "a/.b",
    ".a",
    "a.lock",
    "a/b.lock/c",
    "a.lock.b",
    "a@{b",
    "a@b",
    "@@",
    "HEAD",
    "head",
    "refs/heads/x",
    "a//b",
    "/a",
    "a/",
    "a.",
    "a b",
    "a\tb",
    "a~1",
    "a^",
    "a:b",
    "a?",
    "a*",
    "a[",
    "a]",
    "a\\b",
    "a\x7f",
    "a\x01",
    "...",
    "x/@",
    "a{b}",
    "$(id)",
    "`id`",
    "a;b",
    "a|b",
    "a&b",
    "a>b",
    "'q'",
    '"q"',
    "%41",
    "a/b/c",
    "x" * 255,
]


@pytest.mark.parametrize("name", NAMES, ids=range(len(NAMES)))
def test_branch_names_follow_git_check_ref_format(name):
    git = subprocess.run(["git", "check-ref-format", "--branch", name], capture_output=True)
    assert valid_branch(name) == (git.returncode == 0), (name, git.stderr)


def test_onelevel_rules_and_what_git_reads_specially():
    assert check_ref_format("refs/heads/main") and not check_ref_format("refs/heads/a..b")
    # '@' alone is HEAD to git on a command line; Backline never takes it for a branch
    assert not valid_branch("@")
    assert not valid_branch("x" * 256)  # longer than the ref column
