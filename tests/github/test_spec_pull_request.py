"""backline.yml's pull_request key (issue 18): which pull requests build."""

import pytest

from pipelines.spec import SpecError, parse, pull_request_matches

STAGES = "stages:\n  - name: a\n    steps:\n      - run: echo\n"


def test_forms_of_the_key():
    spec = parse(
        "pull_request:\n  branches: [main, 'release/*']\n  cancel_previous: false\n" + STAGES
    )
    f = spec.data["pull_request"]
    assert f["cancel_previous"] is False
    assert pull_request_matches(f, "main") and pull_request_matches(f, "release/2")
    assert not pull_request_matches(f, "develop")
    off = parse("pull_request: false\n" + STAGES).data["pull_request"]
    assert not pull_request_matches(off, "main")
    assert pull_request_matches(parse(STAGES).data.get("pull_request"), "anything")
    ex = parse("pull_request:\n  branches: {exclude: [wip/*]}\n" + STAGES).data["pull_request"]
    assert pull_request_matches(ex, "main") and not pull_request_matches(ex, "wip/x")


@pytest.mark.parametrize(
    "text, where",
    [
        ("pull_request:\n  cancel_previous: 3\n", "line 2, pull_request.cancel_previous"),
        ("pull_request:\n  forks: true\n", "pull_request"),
        ("pull_request: [main]\n", "line 1, pull_request"),
    ],
)
def test_bad_values_name_line_and_field(text, where):
    with pytest.raises(SpecError) as err:
        parse(text + STAGES)
    assert where in str(err.value)
