"""Pull-request builds reported as GitHub check runs: a real Celery worker, real git repositories
behind a local server speaking GitHub's REST and smart-HTTP protocols (tests/github/fakegithub),
payloads from octokit/webhooks (tests/data/octokit-webhooks/pull_request, see its SOURCE.md) with
the repository and commits pointed at that server."""

import json
from pathlib import Path

import pytest
from django.test import Client

from pipelines.github.models import GitHubCheck
from pipelines.models import PipelineRun, RunStatus
from portal.inbound import signature_for
from tests.conftest import WorkerProcess
from tests.factories import ServiceFactory
from tests.pipelines.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "pr-secret"
FIXTURES = Path(__file__).resolve().parents[1] / "data" / "octokit-webhooks" / "pull_request"
OK_SPEC = "stages:\n  - name: build\n    steps:\n      - name: compile\n        run: echo built\n"
FAIL_SPEC = (
    "stages:\n  - name: test\n    steps:\n      - name: unit\n        run: echo ok\n"
    "      - name: lint\n        run: echo lint failed; exit 4\n"
)
SLOW_SPEC = "stages:\n  - name: build\n    steps:\n      - name: wait\n        run: sleep 60\n"


@pytest.fixture
def repo(fake_github, squad):
    fake_github.add_repo("acme/api", {"backline.yml": OK_SPEC, "README.md": "api\n"})
    service = ServiceFactory(
        slug="api", owner=squad, webhook_secret=SECRET, default_branch="main",
        repository_url=fake_github.clone_url("acme/api"),
    )  # fmt: skip
    return service


@pytest.fixture
def worker(fake_github, monkeypatch, settings, tmp_path):
    for name in ("GITHUB_API_URL", "GITHUB_APP_ID", "GITHUB_APP_PRIVATE_KEY"):
        monkeypatch.setenv(name, str(getattr(settings, name)))
    monkeypatch.setenv("GITHUB_APP_INSTALLATION_ID", str(fake_github.installation_id))
    proc = WorkerProcess(concurrency=3).start()
    yield proc
    proc.stop()


def payload(fake_github, action, sha, *, number=7, head="feature", base="main"):
    name = {"opened": "opened.payload.json", "synchronize": "synchronize.payload.json",
            "reopened": "reopened.payload.json", "closed": "closed.payload.json"}[action]  # fmt: skip
    data = json.loads((FIXTURES / name).read_text())
    data["number"] = data["pull_request"]["number"] = number
    data["repository"].update(
        full_name="acme/api", clone_url=fake_github.clone_url("acme/api"),
        html_url=f"{fake_github.url}/acme/api",
    )  # fmt: skip
    data["pull_request"]["head"].update(sha=sha, ref=head)
    data["pull_request"]["base"]["ref"] = base
    data["installation"] = {"id": fake_github.installation_id}
    return data


def post(data, *, event="pull_request", delivery="d-1", secret=SECRET):
    raw = json.dumps(data).encode()
    return Client().post(
        "/hooks/github", data=raw, content_type="application/json",
        HTTP_X_GITHUB_EVENT=event, HTTP_X_GITHUB_DELIVERY=delivery,
        HTTP_X_HUB_SIGNATURE_256=signature_for(secret, raw),
    )  # fmt: skip


def completed(fake_github, run_id):
    check = GitHubCheck.objects.filter(run_id=run_id).first()
    if not check or check.sent != "completed":
        return None
    return fake_github.check_runs[check.check_id]


def test_pr_opened_runs_on_the_head_commit_and_reports_a_check(fake_github, repo, worker):
    sha = fake_github.commit("acme/api", {"src.py": "print(1)\n"}, branch="feature")
    r = post(payload(fake_github, "opened", sha))
    assert r.status_code == 202, r.content
    run = PipelineRun.objects.get(pk=r.json()["run_id"])
    assert run.trigger == "pull_request" and run.requested_commit == sha
    check = wait_for(lambda: completed(fake_github, run.pk), 90, what="check completed")
    assert fake_github.check_history(check["id"]) == ["queued", "in_progress", "completed"]
    assert check["conclusion"] == "success"
    assert check["name"] == "backline/api" and check["head_sha"] == sha
    assert check["details_url"].endswith(f"/pipelines/runs/{run.pk}/")
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.commit_sha == sha
    # the private repository was cloned with the installation token (git smart HTTP, 200s)
    assert fake_github.requests_to(r"GET /acme/api.git/info/refs", 200) >= 1


def test_a_failing_step_concludes_failure_with_its_name(fake_github, repo, worker):
    sha = fake_github.commit("acme/api", {"backline.yml": FAIL_SPEC}, branch="feature")
    r = post(payload(fake_github, "opened", sha))
    assert r.status_code == 202, r.content
    check = wait_for(lambda: completed(fake_github, r.json()["run_id"]), 90, what="check")
    assert check["conclusion"] == "failure"
    assert check["output"]["title"] == "Step test/lint failed (exit code 4)"
    assert "test/lint" in check["output"]["summary"]


def test_a_new_commit_cancels_the_older_run_and_its_check(fake_github, repo, worker):
    old_sha = fake_github.commit("acme/api", {"backline.yml": SLOW_SPEC}, branch="feature")
    first = post(payload(fake_github, "opened", old_sha), delivery="d-1").json()["run_id"]
    wait_for(
        lambda: GitHubCheck.objects.filter(run_id=first, sent="in_progress").exists(), 90,
        what="old run in progress",
    )  # fmt: skip
    new_sha = fake_github.commit("acme/api", {"backline.yml": OK_SPEC}, branch="feature")
    r = post(payload(fake_github, "synchronize", new_sha), delivery="d-2")
    assert r.status_code == 202 and r.json()["canceled"] == [first]
    old_check = wait_for(lambda: completed(fake_github, first), 90, what="old check")
    assert old_check["conclusion"] == "cancelled"
    assert PipelineRun.objects.get(pk=first).status == RunStatus.CANCELED
    new_check = wait_for(lambda: completed(fake_github, r.json()["run_id"]), 90, what="new")
    assert new_check["conclusion"] == "success" and new_check["head_sha"] == new_sha


def test_pull_request_filters_of_the_head_commit_decide(fake_github, repo):
    spec = "pull_request:\n  branches: [release/*]\n" + OK_SPEC
    sha = fake_github.commit("acme/api", {"backline.yml": spec}, branch="feature")
    r = post(payload(fake_github, "opened", sha, base="main"))
    assert r.status_code == 200 and r.json()["runs"] == []
    assert "not built by the spec's pull_request filters" in r.json()["skipped"]["reason"]
    r = post(payload(fake_github, "opened", sha, base="release/2"), delivery="d-2")
    assert r.status_code == 202 and len(r.json()["runs"]) == 1
    off = fake_github.commit("acme/api", {"backline.yml": "pull_request: false\n" + OK_SPEC},
                             branch="feature")  # fmt: skip
    r = post(payload(fake_github, "synchronize", off), delivery="d-3")
    assert r.status_code == 200 and r.json()["runs"] == []


def test_github_refusing_the_spec_read_starts_nothing(fake_github, repo):
    sha = fake_github.commit("acme/api", {"src.py": "x\n"}, branch="feature")
    fake_github.forbidden_repos.add("acme/api")
    r = post(payload(fake_github, "opened", sha))
    assert r.status_code == 400
    assert "403" in r.json()["message"] and "Resource not accessible" in r.json()["message"]
    fake_github.forbidden_repos.clear()
    fake_github.primary_exhausted = True
    r = post(payload(fake_github, "opened", sha), delivery="d-2")
    assert r.status_code == 400 and "rate limit" in r.json()["message"]
    assert not PipelineRun.objects.exists() and not GitHubCheck.objects.exists()


def test_other_actions_and_bad_payloads(fake_github, repo):
    r = post(payload(fake_github, "closed", "a" * 40))
    assert r.status_code == 200 and "starts nothing" in r.json()["reason"]
    bad = payload(fake_github, "opened", "a" * 40)
    bad["pull_request"]["head"]["sha"] = "--upload-pack=x"
    r = post(bad)
    assert r.status_code == 400 and "pull_request.head.sha" in r.json()["message"]
    assert not PipelineRun.objects.exists()


def test_a_push_reports_a_check_on_the_pushed_commit(fake_github, repo, worker, shared_data):
    data = json.loads(
        (shared_data / "github-webhooks" / "push-with-installation.payload.json").read_text()
    )
    sha = fake_github.commit("acme/api", {"src.py": "print(2)\n"})
    data.update(ref="refs/heads/main", after=sha, deleted=False)
    data["installation"]["id"] = fake_github.installation_id
    data["repository"].update(full_name="acme/api", clone_url=fake_github.clone_url("acme/api"))
    r = post(data, event="push")
    assert r.status_code == 202, r.content
    check = wait_for(lambda: completed(fake_github, r.json()["run_id"]), 90, what="push check")
    assert check["head_sha"] == sha and check["conclusion"] == "success"
    assert fake_github.check_history(check["id"]) == ["queued", "in_progress", "completed"]


def test_check_updates_are_retried_while_github_fails(fake_github, repo, worker):
    fake_github.failing_checks = 2
    sha = fake_github.commit("acme/api", {"src.py": "print(3)\n"}, branch="feature")
    r = post(payload(fake_github, "opened", sha))
    assert r.status_code == 202  # the delivery does not wait for GitHub
    check = wait_for(lambda: completed(fake_github, r.json()["run_id"]), 120, what="check")
    assert fake_github.check_history(check["id"]) == ["queued", "in_progress", "completed"]
    assert fake_github.requests_to(r"POST /repos/acme/api/check-runs", 502) == 2
    row = GitHubCheck.objects.get(run_id=r.json()["run_id"])
    assert row.attempts >= 5 and row.error == ""


def test_pull_requests_from_forks_are_not_built_unless_allowed(fake_github, repo, settings):
    sha = fake_github.commit("acme/api", {"src.py": "x\n"}, branch="feature")
    data = payload(fake_github, "opened", sha)
    data["pull_request"]["head"]["repo"] = {"full_name": "mallory/api"}
    r = post(data)
    assert r.status_code == 200 and "forks are not built" in r.json()["reason"]
    assert not PipelineRun.objects.exists()
    settings.GITHUB_PR_BUILD_FORKS = True
    assert post(data, delivery="d-2").status_code == 202
