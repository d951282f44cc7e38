"""No shell is ever built from user input: branch names, service names, variables are argv
elements or environment variables. The one ``sh -c`` runs a pipeline step's own command (the
squad's ``backline.yml``, which is code by design), never a string the portal assembled."""

import ast
from pathlib import Path

import pytest

from tests.conftest import client_for
from tests.factories import ServiceFactory

ROOT = Path(__file__).resolve().parent.parent
APPS = ["portal", "squads", "pipelines", "infra", "monitoring"]
FORBIDDEN_CALLS = {
    ("os", "system"),
    ("os", "popen"),
    ("os", "execl"),
    ("os", "execlp"),
    ("subprocess", "getoutput"),
    ("subprocess", "getstatusoutput"),
}
# (file, the exact command expression passed after "-c"): why it is not user input
SHELL_ALLOWED = {
    ("pipelines/runner.py", "step.command"): "a pipeline step runs its spec's own command",
}


def _sources():
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            yield path.relative_to(ROOT).as_posix(), ast.parse(path.read_text(), str(path))


def test_no_shell_true_no_os_system_and_the_only_sh_c_is_a_step_command():
    problems = []
    shells = set()
    for rel, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                for kw in node.keywords:
                    if kw.arg == "shell" and not (
                        isinstance(kw.value, ast.Constant) and kw.value.value is False
                    ):
                        problems.append(f"{rel}:{node.lineno}: shell={ast.unparse(kw.value)}")
                func = node.func
                if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                    if (func.value.id, func.attr) in FORBIDDEN_CALLS:
                        problems.append(f"{rel}:{node.lineno}: {func.value.id}.{func.attr}()")
            if isinstance(node, ast.List) and len(node.elts) >= 3:
                first, second = node.elts[0], node.elts[1]
                if (
                    isinstance(first, ast.Constant)
                    and str(first.value).rsplit("/", 1)[-1] in ("sh", "bash", "dash", "zsh")
                    and isinstance(second, ast.Constant)
                    and second.value == "-c"
                ):
                    key = (rel, ast.unparse(node.elts[2]))
                    shells.add(key)
                    if key not in SHELL_ALLOWED:
                        problems.append(f"{rel}:{node.lineno}: sh -c {key[1]}")
    assert not problems, "\n".join(problems)
    assert shells == set(SHELL_ALLOWED), shells  # the allow-list stays honest


# '$(id)' and '`id`' are branch names git accepts (git check-ref-format --branch), so Backline
# accepts them too: refs reach git as separate arguments, never through a shell.
@pytest.mark.parametrize(
    "ref",
    ["main; touch /tmp/pwned", "--upload-pack=touch /tmp/pwned", "a b", "-x", "a..b", "x:y"],
)
def test_branch_names_that_look_like_shell_or_options_are_refused(squad, alice, ref):
    ServiceFactory(slug="playback-api", owner=squad)
    c = client_for(alice)
    resp = c.post("/api/v1/services/playback-api/runs/", {"ref": ref}, format="json")
    assert resp.status_code == 400, resp.content
    assert resp.json()["errors"]["ref"]
    resp = c.post(
        "/api/v1/workspaces/",
        {"slug": "net", "owner": "playback", "source": "git", "repository_url": "x/y", "ref": ref},
        format="json",
    )
    assert resp.status_code == 400, resp.content
