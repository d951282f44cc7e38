"""GitHub Actions runs of a service (issue 18): polled by beat through the real client
(ETags, rate limits) from the local server speaking GitHub's REST (tests/github/fakegithub.py),
shown on the service and pipeline pages and in the API, counted by the scorecard and DORA."""

from datetime import UTC, datetime, timedelta

import pytest
from rest_framework.test import APIClient

from pipelines.github import actions
from pipelines.models import ActionsPoll, ActionsRun
from tests.conftest import client_for
from tests.factories import ServiceFactory

pytestmark = pytest.mark.django_db

REPO = "acme/player"
RUNS = r"GET /repos/acme/player/actions/runs$"


@pytest.fixture
def service(squad):
    return ServiceFactory(
        slug="player",
        name="Player",
        owner=squad,
        default_branch="main",
        annotations={actions.PROJECT_SLUG: REPO},
    )


@pytest.fixture
def hub(fake_github):
    fake_github.add_repo_fast(REPO, {"README.md": "# player\n"})
    now = datetime.now(UTC)
    fake_github.add_workflow_run(REPO, "ci.yml", started=now - timedelta(hours=3), seconds=90)
    fake_github.add_workflow_run(
        REPO, "deploy.yml", name="Deploy", conclusion="failure", started=now - timedelta(hours=2)
    )
    fake_github.add_workflow_run(
        REPO, "ci.yml", status="in_progress", branch="feature/x", event="pull_request"
    )
    return fake_github


def test_runs_show_on_the_service_and_pipeline_pages_and_in_the_api(hub, service, alice, bob):
    assert actions.sync_runs() == {"player": 3}
    runs = {r.run_number: r for r in ActionsRun.objects.filter(workflow_file="ci.yml")}
    assert runs[1].state == "success" and runs[1].duration == 90.0
    assert runs[2].state == "in_progress" and runs[2].duration is None
    ci = hub.workflow_runs[REPO][-1]
    assert runs[1].head_sha == ci["head_sha"] and runs[1].run_id == ci["id"]
    for user in (alice, bob):  # every signed-in person reads the catalog, as for Jenkins
        panel = client_for(user).get("/pipelines/services/player/panel").content.decode()
        assert f'data-run="{ci["id"]}"' in panel and ci["html_url"] in panel
        assert "badge-success" in panel and "badge-failure" in panel
        assert "badge-in_progress" in panel and "90 s" in panel and ci["head_sha"][:10] in panel
        assert "Deploy #1" in panel and "feature/x" in panel
    page = client_for(alice).get("/pipelines/services/player/").content.decode()
    assert 'id="github-actions"' in page and f'data-run="{ci["id"]}"' in page
    api = client_for(bob).get("/api/v1/services/player/ci-runs")
    assert api.status_code == 200, api.content
    body = api.json()
    assert body["repository"] == REPO and body["error"] == "" and body["ok_at"]
    by_number = {(r["workflow_file"], r["run_number"]): r for r in body["github_actions"]}
    assert by_number[("ci.yml", 1)]["state"] == "success"
    assert by_number[("ci.yml", 1)]["duration"] == 90.0
    assert by_number[("deploy.yml", 1)]["conclusion"] == "failure"
    assert by_number[("ci.yml", 2)]["event"] == "pull_request"
    assert APIClient().get("/api/v1/services/player/ci-runs").status_code in (401, 403)
    assert client_for(alice).get("/api/v1/services/nope/ci-runs").status_code == 404


def test_an_unchanged_second_poll_is_a_304_and_writes_nothing(hub, service):
    assert actions.sync_runs() == {"player": 3}
    before = list(ActionsRun.objects.values_list("pk", "updated_at"))
    assert actions.sync_runs() == {"player": "not modified"}
    assert hub.requests_to(RUNS, 200) == 1 and hub.requests_to(RUNS, 304) == 1
    assert list(ActionsRun.objects.values_list("pk", "updated_at")) == before
    hub.add_workflow_run(REPO, "ci.yml", title="new commit")
    assert actions.sync_runs() == {"player": 4}
    assert hub.requests_to(RUNS, 200) == 2


def test_a_rate_limited_poll_says_so_on_the_page_and_changes_nothing(hub, service, alice):
    actions.sync_runs()
    hub.add_workflow_run(REPO, "ci.yml", conclusion="failure", title="broken")
    hub.primary_exhausted = True
    out = actions.sync_runs()
    assert "GitHub rate limit reached" in out["player"] and "try again in" in out["player"]
    assert ActionsRun.objects.count() == 3  # the new run is not half-read into the rows
    poll = ActionsPoll.objects.get(service=service)
    assert "rate limit" in poll.error and poll.ok_at is not None
    panel = client_for(alice).get("/pipelines/services/player/panel").content.decode()
    assert 'id="actions-error"' in panel and "GitHub rate limit reached" in panel
    assert "from the last good read" in panel
    hub.primary_exhausted, hub.rate_remaining = False, 5000
    assert actions.sync_runs() == {"player": 4}
    assert ActionsPoll.objects.get(service=service).error == ""


def test_named_workflows_are_read_one_by_one_all_or_nothing(hub, service, other_squad):
    service.annotations = {actions.PROJECT_SLUG: REPO, actions.WORKFLOWS: "ci.yml, deploy.yml"}
    service.save()
    hub.secondary_limit_after = 1  # ci.yml answers, then a secondary rate limit (120 s)
    out = actions.sync_runs()
    assert "secondary rate limit" in out["player"]
    assert hub.requests_to(r"GET /repos/acme/player/actions/workflows/ci.yml/runs", 200) == 1
    assert not ActionsRun.objects.exists()  # ci.yml's answer was not saved alone
    hub.secondary_limit_after = None
    assert actions.sync_runs() == {"player": 3}
    service.annotations[actions.WORKFLOWS] = "deploy.yml"
    service.save()
    assert actions.sync_runs() == {"player": 1}
    assert hub.requests_to(RUNS) == 0  # only the per-workflow endpoint was asked
    service.annotations[actions.WORKFLOWS] = "nope.yml"
    service.save()
    assert "404" in actions.sync_runs()["player"]


def test_bad_annotations_are_said_and_nothing_is_asked(hub, service, alice):
    service.annotations = {actions.PROJECT_SLUG: "not a repo"}
    service.save()
    out = actions.sync_runs()
    assert (
        out["player"] == "annotation github.com/project-slug: 'not a repo' is not owner/repository"
    )
    assert hub.requests_to(r"/actions/") == 0
    panel = client_for(alice).get("/pipelines/services/player/panel").content.decode()
    assert "is not owner/repository" in panel
    service.annotations = {actions.PROJECT_SLUG: REPO, actions.WORKFLOWS: "../x"}
    service.save()
    assert "is not a workflow file name" in actions.sync_runs()["player"]


def test_a_rate_limit_stops_the_poll_for_the_services_not_yet_read(hub, service, squad):
    other = ServiceFactory(slug="search-api", owner=squad, annotations={actions.PROJECT_SLUG: REPO})
    hub.primary_exhausted = True
    out = actions.sync_runs()
    assert all("rate limit" in out[s] for s in ("player", "search-api"))
    assert hub.requests_to(r"/actions/runs") == 1  # the second service was not asked
    assert "rate limit" in ActionsPoll.objects.get(service=other).error


def test_runs_count_in_the_scorecard_and_dora(hub, service):
    from monitoring import dora
    from squads.scorecards import evaluate_one

    service.annotations[actions.DEPLOY_WORKFLOWS] = "deploy.yml"
    service.save()
    hub.add_workflow_run(REPO, "deploy.yml", name="Deploy")  # succeeded, newest on main
    actions.sync_runs()
    card = {r.rule.key: r.passed for r in evaluate_one(service).results}
    assert card["has_pipeline"] is True and card["default_branch_green"] is True
    rep = dora.report([service], days=30)
    assert rep["metrics"]["deployments"] == 1  # the successful deploy run; CI runs are not
    hub.add_workflow_run(REPO, "ci.yml", conclusion="failure")  # newest completed on main
    actions.sync_runs()
    card = {r.rule.key: r.passed for r in evaluate_one(service).results}
    assert card["default_branch_green"] is False
    hub.add_workflow_run(REPO, "ci.yml", conclusion="success", branch="feature/y")
    actions.sync_runs()  # a green run on another branch changes nothing
    card = {r.rule.key: r.passed for r in evaluate_one(service).results}
    assert card["default_branch_green"] is False
