"""Jenkins (issue 18): the ``jenkins:`` step and a service's recent builds, against a local
server speaking Jenkins' REST protocol (tests/pipelines/jenkins_server.py), driven by the real
client (requests) and the real executor with real git."""

import pytest

from pipelines import runner, services
from pipelines.models import LogChunk, PipelineRun, RunStatus
from pipelines.spec import SpecError, parse
from portal.actors import Actor
from tests.conftest import client_for
from tests.pipelines.jenkins_server import TOKEN, USER, Build, FakeJenkins, Job

pytestmark = pytest.mark.django_db

STEP = """\
stages:
  - name: deploy
    steps:
      - name: hand over
        jenkins: {job: teams/playback/deploy, parameters: {ENV: production, DRY: false}}
      - {name: after, run: "echo after-jenkins"}
"""


@pytest.fixture
def jenkins(settings):
    server = FakeJenkins(
        {
            "teams/playback/deploy": Job(
                ["Started by user backline", "deploying…", "Finished: SUCCESS"]
            ),
            "teams/playback/long": Job([f"line {i}" for i in range(100000)]),
            "teams/playback/broken": Job(
                ["Started", "error: disk full", "Finished: FAILURE"], "FAILURE"
            ),
        }
    ).start()
    settings.JENKINS_URL, settings.JENKINS_USER, settings.JENKINS_API_TOKEN = (
        server.url,
        USER,
        TOKEN,
    )
    settings.JENKINS_POLL_SECONDS = 0.01
    yield server
    server.shutdown()


def _run(service, git_repo, spec):
    git_repo.commit({"backline.yml": spec}, "jenkins")
    run, _ = services.trigger_run(service, actor=Actor.system("test"), ref="main")
    runner.execute(run.pk)
    run = PipelineRun.objects.get(pk=run.pk)
    log = "".join(
        LogChunk.objects.filter(run=run).order_by("offset").values_list("text", flat=True)
    )
    return run, log


def test_a_jenkins_step_triggers_follows_and_succeeds(jenkins, service, git_repo, workspace):
    run, log = _run(service, git_repo, STEP)
    assert run.status == RunStatus.SUCCEEDED, (run.error, log)
    build = jenkins.jobs["teams/playback/deploy"].builds[0]
    assert build.params == {"ENV": "production", "DRY": "false"}
    assert ("GET", "/crumbIssuer/api/json") in jenkins.requests
    assert ("POST", "/job/teams/job/playback/job/deploy/buildWithParameters") in jenkins.requests
    assert jenkins.queue_polls[100] >= 2  # waited in the queue, then had its build
    i = [
        log.index(t) for t in ("Started by user backline\n", "deploying…\n", "Finished: SUCCESS\n")
    ]
    assert i == sorted(i)  # the whole console, in order, each line once
    assert log.count("deploying…") == 1
    assert "jenkins: teams/playback/deploy SUCCESS" in log and "after-jenkins" in log
    assert [s.status for s in run.steps.order_by("index")] == ["succeeded", "succeeded"]


def test_a_failed_jenkins_build_fails_the_step(jenkins, service, git_repo, workspace):
    run, log = _run(service, git_repo, STEP.replace("deploy, parameters", "broken, parameters"))
    assert run.status == RunStatus.FAILED
    assert "error: disk full" in log and "jenkins: teams/playback/broken FAILURE" in log
    assert "deploy/hand over failed" in run.error
    assert run.steps.get(name="after").status == RunStatus.CANCELED  # nothing after it ran


def test_jenkins_down_or_unknown_job_fails_with_a_clear_message(
    jenkins, settings, service, git_repo, workspace
):
    run, log = _run(service, git_repo, STEP.replace("playback/deploy", "playback/nope"))
    assert run.status == RunStatus.FAILED
    assert "Jenkins answered 404 to POST" in log and "/job/nope/buildWithParameters" in log
    settings.JENKINS_URL = "http://127.0.0.1:1"
    run, log = _run(service, git_repo, STEP + "# again\n")
    assert run.status == RunStatus.FAILED and "Jenkins at http://127.0.0.1:1/ is unreachable" in log
    assert len(jenkins.jobs["teams/playback/deploy"].builds) == 0  # nothing was triggered


def test_the_step_timeout_stops_the_build(jenkins, service, git_repo, workspace):
    spec = STEP.replace("deploy, parameters", "long, parameters").replace(
        "DRY: false}}", "DRY: false}}\n        timeout: 1"
    )
    run, log = _run(service, git_repo, spec)
    assert run.status == RunStatus.TIMED_OUT, (run.error, log[-500:])
    build = jenkins.jobs["teams/playback/long"].builds[0]
    assert build.aborted and ("POST", "/job/teams/job/playback/job/long/1/stop") in jenkins.requests
    assert "jenkins: build stopped (timed out)" in log and "line 1\n" in log


def test_a_wrong_token_is_refused_by_jenkins_and_said(
    jenkins, settings, service, git_repo, workspace
):
    settings.JENKINS_API_TOKEN = "wrong"
    run, log = _run(service, git_repo, STEP)
    assert run.status == RunStatus.FAILED and "Jenkins answered 401" in log


@pytest.mark.parametrize(
    "step, words",
    [
        ("{name: j, jenkins: {parameters: {A: b}}}", "required: the job's full name"),
        ("{name: j, run: x, jenkins: {job: a}}", "either jenkins or run"),
        ("{name: j, jenkins: {job: a, params: {}}}", "unknown key 'params'"),
    ],
)
def test_bad_jenkins_steps_are_spec_errors(step, words):
    with pytest.raises(SpecError) as exc:
        parse(f"stages: [{{name: d, steps: [{step}]}}]")
    assert words in exc.value.message and exc.value.field.startswith("stages[0].steps[0].jenkins")


def test_recent_builds_on_the_service_and_pipeline_pages(jenkins, settings, service, alice):
    service.annotations = {"jenkins.io/job-full-name": "teams/playback/broken"}
    service.save()
    client = client_for(alice)

    job = jenkins.jobs["teams/playback/broken"]
    for n in (1, 2):
        b = Build("teams/playback/broken", n, job, {})
        b.shown = len(job.lines) if n == 1 else 0
        job.builds.append(b)
    page = client.get(f"/pipelines/services/{service.slug}/").content.decode()
    assert f'hx-get="/pipelines/services/{service.slug}/jenkins"' in page
    panel = client.get(f"/pipelines/services/{service.slug}/panel").content.decode()
    assert "/jenkins" in panel
    html = client.get(f"/pipelines/services/{service.slug}/jenkins").content.decode()
    assert 'data-build="2"' in html and 'data-build="1"' in html
    assert "badge-failure" in html and "badge-running" in html and "e1f2a3b4c5" in html
    assert f"{jenkins.url}/job/teams/job/playback/job/broken/1/" in html
    settings.JENKINS_URL = "http://127.0.0.1:1"
    service.annotations = {"jenkins.io/job-full-name": "teams/other"}
    service.save()
    down = client.get(f"/pipelines/services/{service.slug}/jenkins")
    assert down.status_code == 200 and "is unreachable" in down.content.decode()


def test_saved_builds_count_in_the_scorecard_and_dora(jenkins, service, squad):
    from monitoring import dora
    from pipelines import jenkins as jenkins_mod
    from pipelines.models import JenkinsBuild
    from squads.scorecards import evaluate_one

    service.annotations = {"jenkins.io/job-full-name": "teams/playback/deploy"}
    service.save()
    job = jenkins.jobs["teams/playback/deploy"]
    for n in (1, 2, 3):
        b = Build("teams/playback/deploy", n, job, {})
        b.shown = len(job.lines) if n < 3 else 0  # two finished, one still building
        b.timestamp -= (4 - n) * 3600 * 1000  # started n hours ago
        job.builds.append(b)
    assert jenkins_mod.sync_builds() == {service.slug: 3}
    assert jenkins_mod.sync_builds() == {service.slug: 3}  # again: updated, not duplicated
    rows = JenkinsBuild.objects.filter(service=service).order_by("number")
    assert [(b.number, b.status) for b in rows] == [(1, "success"), (2, "success"), (3, "running")]
    assert rows[0].commit.startswith("e1f2a3b4") and rows[0].duration == 1.5
    card = {r.rule.key: r.passed for r in evaluate_one(service).results}
    assert card["has_pipeline"] is True and card["default_branch_green"] is True
    rep = dora.report([service], days=30)
    assert rep["metrics"]["deployments"] == 2
    JenkinsBuild.objects.filter(number=2).update(status="failure")
    card = {r.rule.key: r.passed for r in evaluate_one(service).results}
    assert card["default_branch_green"] is False
