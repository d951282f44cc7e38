"""Issue 14: a backline.yml in the repository over the spec limit fails the run saying so,
without being read whole, parsed or stored on the run (a 25 MB spec was served 26 MB at a time)."""

import pytest

from pipelines import runner, services
from pipelines.models import PipelineRun, RunStatus
from portal import limits
from portal.actors import Actor

pytestmark = pytest.mark.django_db


def test_an_oversized_repository_spec_fails_the_run(service, git_repo, workspace, settings):
    settings.SANDBOX = "none"  # the run fails before any step: no sandbox needed
    huge = "stages: [{name: b, steps: [{name: s, run: 'true'}]}]\n" + "#" * (3 * 2**20) + "\n"
    git_repo.commit({"backline.yml": huge}, "a huge spec")
    run, _ = services.trigger_run(service, actor=Actor.system("test"), ref="main")
    runner.execute(run.pk)
    run = PipelineRun.objects.get(pk=run.pk)
    assert run.status == RunStatus.FAILED
    assert f"longer than {limits.SPEC_MAX:,} characters" in run.error, run.error
    assert run.spec is None and not run.steps.exists()
