import subprocess
from pathlib import Path

import pytest

from tests.factories import ServiceFactory

SPEC = """\
stages:
  - name: build
    steps:
      - name: compile
        run: echo "compiling $BACKLINE_SERVICE at $BACKLINE_BRANCH"
  - name: test
    steps:
      - name: unit
        run: |
          echo "running tests"
          test -f README.md
"""


class GitRepo:
    """A real git repository in a temporary folder."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.email", "dev@example.com")
        self.git("config", "user.name", "Dev Eloper")
        self.git("config", "commit.gpgsign", "false")

    def git(self, *args) -> str:
        return subprocess.run(
            ["git", *args], cwd=self.path, check=True, capture_output=True, text=True
        ).stdout.strip()

    def commit(self, files: dict, message="change") -> str:
        for name, text in files.items():
            p = self.path / name
            p.parent.mkdir(parents=True, exist_ok=True)
            if text is None:
                p.unlink()
            else:
                p.write_text(text)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def branch(self, name):
        self.git("checkout", "-q", "-b", name)

    def checkout(self, name):
        self.git("checkout", "-q", name)

    @property
    def url(self):
        return f"file://{self.path}"


@pytest.fixture
def git_repo(tmp_path):
    repo = GitRepo(tmp_path / "repo")
    repo.commit({"README.md": "# player\n", "backline.yml": SPEC}, "first commit")
    return repo


@pytest.fixture
def service(squad, git_repo):
    return ServiceFactory(
        slug="player",
        name="Player",
        owner=squad,
        repository_url=git_repo.url,
        default_branch="main",
    )


@pytest.fixture
def workspace(settings, tmp_path):
    settings.WORKSPACE_ROOT = tmp_path / "workspaces"
    return settings.WORKSPACE_ROOT


def wait_for(predicate, timeout=30.0, interval=0.05, what="condition"):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
