import pytest

from pipelines.spec import SpecError, branch_matches, parse


def test_minimal_form_works():
    spec = parse('stages: [{name: build, steps: [{name: compile, run: "make"}]}]')
    steps = list(spec.steps())
    assert steps == [
        (
            0,
            "build",
            {
                "name": "compile",
                "kind": "run",
                "run": "make",
                "env": {},
                "timeout": None,
                "secrets": [],
            },
        )
    ]
    assert spec.data["timeout"] == 3600
    assert spec.branch_matches("anything")


def test_full_form():
    spec = parse(
        """
timeout: 10m
branches: {include: [main, "release/*"], exclude: ["release/old*"]}
env: {A: 1, FLAG: true}
stages:
  - name: build
    steps:
      - name: compile
        run: make
        timeout: 30s
        secrets: [NPM_TOKEN]
        env: {B: two}
"""
    )
    step = next(spec.steps())[2]
    assert spec.data["timeout"] == 600
    assert step["timeout"] == 30
    assert step["secrets"] == ["NPM_TOKEN"]
    assert spec.data["env"] == {"A": "1", "FLAG": "true"}
    assert spec.branch_matches("main") and spec.branch_matches("release/2.0")
    assert not spec.branch_matches("release/old-1") and not spec.branch_matches("feature/x")
    assert spec.secret_names() == ["NPM_TOKEN"]


@pytest.mark.parametrize(
    "text,line,field,words",
    [
        (
            "stages:\n  - name: build\n    steps:\n      - name: compile\n",
            4,
            "stages[0].steps[0].run",
            "required",
        ),
        (
            "stages:\n  - name: build\n    steps:\n      - name: c\n        run: make\n        timeout: soon\n",
            6,
            "stages[0].steps[0].timeout",
            "not a duration",
        ),
        ("stages:\n  - name: build\n    stepz: []\n", 3, "stages[0].stepz", "unknown key"),
        ("stages: []\n", 1, "stages", "non-empty"),
        (
            "stages:\n  - name: a\n    steps: [{run: x}]\n  - name: a\n    steps: [{run: y}]\n",
            4,
            "stages[1].name",
            "duplicate",
        ),
        (
            'stages:\n  - name: b\n    steps: [{run: x, secrets: ["not valid"]}]\n',
            3,
            "stages[0].steps[0].secrets[0]",
            "not a valid",
        ),
        ("stages: [\n  {name: b\n", 3, "", "not valid YAML"),
        ("just a string\n", 1, "", "expected a mapping"),
        (
            "branches: {only: [x]}\nstages: [{name: b, steps: [{run: x}]}]\n",
            1,
            "branches.only",
            "unknown key",
        ),
    ],
)
def test_invalid_specs_name_line_and_field(text, line, field, words):
    with pytest.raises(SpecError) as info:
        parse(text)
    err = info.value
    assert err.line == line, str(err)
    assert err.field == field, str(err)
    assert words in err.message
    assert f"line {line}" in str(err)


def test_branch_filters_default_to_everything():
    assert branch_matches(None, "x")
    assert branch_matches({"include": [], "exclude": ["wip/*"]}, "main")
    assert not branch_matches({"include": [], "exclude": ["wip/*"]}, "wip/a")
