"""Issue 18 in Chromium: a service's GitHub Actions runs in the pipeline panel of its page
(lazy-loaded by HTMX) with the last read's error, and a run parked at an approval."""

from datetime import UTC, datetime, timedelta

import pytest

from pipelines.models import ActionsPoll, ActionsRun, Approval, PipelineRun, StepRun
from tests.conftest import screenshot
from tests.factories import ServiceFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_actions_runs_and_a_waiting_run_render(page, live_server, login, alice, squad):
    service = ServiceFactory(
        slug="player", name="Player", owner=squad,
        annotations={"github.com/project-slug": "acme/player"},
    )  # fmt: skip
    now = datetime.now(UTC)
    for n, (status, conclusion, branch) in enumerate(
        [("completed", "success", "main"), ("completed", "failure", "main"),
         ("in_progress", "", "feature/x")], start=1,
    ):  # fmt: skip
        ActionsRun.objects.create(
            service=service, repository="acme/player", run_id=1000 + n, workflow_name="CI",
            workflow_file="ci.yml", run_number=n, event="push", status=status,
            conclusion=conclusion, head_branch=branch, head_sha=f"{n}abcdef0123456789",
            html_url=f"https://github.com/acme/player/actions/runs/{1000 + n}",
            run_started_at=now - timedelta(hours=4 - n), updated_at=now - timedelta(hours=4 - n)
            + timedelta(seconds=95),
        )  # fmt: skip
    ActionsPoll.objects.create(
        service=service, repository="acme/player", polled_at=now, ok_at=now - timedelta(minutes=4),
        error="GitHub rate limit reached (GET /repos/acme/player/actions/runs: API rate limit "
        "exceeded for installation.); try again in 3540 s",
    )  # fmt: skip
    run = PipelineRun.objects.create(service=service, number=7, status="waiting", ref="main")
    step = StepRun.objects.create(
        run=run, stage="deploy", name="gate", kind="approval", status="waiting", index=1
    )
    Approval.objects.create(run=run, step=step, squad=squad, deadline=now + timedelta(hours=4))
    login(page, alice)
    page.goto(f"{live_server.url}{service.get_absolute_url()}")
    page.wait_for_selector("#github-actions tr[data-run='1003']")
    assert "GitHub rate limit reached" in page.inner_text("#actions-error")
    screenshot(page, "service-github-actions")
    page.goto(f"{live_server.url}/pipelines/runs/{run.pk}/")
    page.wait_for_selector("#approve-1")
    assert "waiting" in page.inner_text(".pagehead")
    screenshot(page, "run-waiting-for-approval")
