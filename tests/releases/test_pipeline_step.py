"""A pipeline's deploy stage starts a release and waits for its outcome."""

import threading

import pytest

from pipelines import runner
from pipelines import services as pipeline_services
from pipelines.models import PipelineRun, StepRun
from pipelines.spec import SpecError, parse
from portal.actors import Actor
from releases import controller, services, sync
from releases.models import Release
from tests.factories import ServiceFactory
from tests.pipelines.conftest import GitRepo, wait_for
from tests.releases.conftest import drive_until

SPEC = """\
stages:
  - name: build
    steps:
      - name: compile
        run: echo built
  - name: deploy
    steps:
      - name: canary
        release: {environment: hooked}
"""


def test_spec_release_step():
    spec = parse(SPEC)
    step = spec.data["stages"][1]["steps"][0]
    assert step["kind"] == "release" and step["release"] == {
        "environment": "hooked",
        "version": "",
    }
    with pytest.raises(SpecError, match="either run or release"):
        parse(SPEC.replace("release: {environment: hooked}", "run: x\n        release: {a: b}"))
    with pytest.raises(SpecError, match="environment"):
        parse(SPEC.replace("{environment: hooked}", "{version: '1'}"))


def _run_in_thread(run):
    def target():
        from django.db import connection

        try:
            runner.execute(run.pk)
        finally:
            connection.close()

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t


@pytest.mark.django_db(transaction=True)
def test_pipeline_waits_for_the_release(tmp_path, squad, alice, webhook_env, deployer):
    # per-environment strategy override: a short canary
    webhook_env.strategy = [{"set_weight": 50}, {"pause": {"duration": 0.3}}, {"set_weight": 100}]
    webhook_env.save()
    repo = GitRepo(tmp_path / "repo")
    sha = repo.commit({"backline.yml": SPEC}, "deploy me")
    svc = ServiceFactory(slug="player", owner=squad, repository_url=repo.url)
    run, _ = pipeline_services.trigger_run(svc, actor=Actor(user=alice), ref="main")
    t = _run_in_thread(run)
    release = wait_for(lambda: Release.objects.filter(pipeline_run=run).first(), 30, what="release")
    assert release.version == sha[:12] and release.strategy_source == "environment"
    assert release.trigger == "pipeline"
    while t.is_alive():
        controller.tick_all()  # beat
        sync.sync(release.pk)  # and the worker that applies the driver calls it wants
        t.join(0.3)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    release.refresh_from_db()
    assert release.status == "succeeded" and release.commit_sha == sha
    step = StepRun.objects.get(run=run, name="canary")
    assert step.kind == "release" and step.status == "succeeded"
    log = pipeline_services.read_log(run, 0, limit=100000)[0]
    assert "release succeeded" in log
    assert "canary 50 %" in log or "applying 50 %" in log  # polled while applying or after

    # a release that is aborted fails the pipeline
    webhook_env.strategy = [{"set_weight": 10}, {"pause": {}}]
    webhook_env.save()
    run2, _ = pipeline_services.trigger_run(svc, actor=Actor(user=alice), ref="main")
    t = _run_in_thread(run2)
    r2 = wait_for(lambda: Release.objects.filter(pipeline_run=run2).first(), 30, what="release")
    drive_until(r2, lambda r: r.status == "paused", timeout=10)
    services.abort_release(r2, actor=Actor(user=alice), reason="not today")
    t.join(20)
    run2 = PipelineRun.objects.get(pk=run2.pk)
    assert run2.status == "failed" and "canary" in run2.error
    assert "release aborted" in pipeline_services.read_log(run2, 0, limit=100000)[0]
