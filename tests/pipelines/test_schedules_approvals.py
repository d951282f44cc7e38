"""Schedules (beat, time-zone aware) and approval steps (issue 18), with a real worker."""

from datetime import UTC, datetime

import pytest
from django.utils import timezone

from pipelines import schedules, services
from pipelines.approvals import decide_approval
from pipelines.models import Approval, PipelineConfig, PipelineRun, RunStatus
from pipelines.spec import SpecError, parse
from portal.actors import Actor
from portal.errors import Conflict, Invalid
from portal.models import AuditEvent
from tests.conftest import WorkerProcess, client_for
from tests.pipelines.conftest import wait_for

ONE = "stages: [{name: b, steps: [{run: 'true'}]}]\n"


@pytest.mark.parametrize(
    "block, field, words",
    [
        ('[{cron: "61 3 * * *", branch: main}]', "schedules[0].cron", "not a cron expression"),
        ('[{cron: "@daily", branch: main}]', "schedules[0].cron", "not a cron expression"),
        ('[{cron: "0 3 * * *"}]', "schedules[0].branch", "required"),
        (
            '[{cron: "0 3 * * *", branch: main, timezone: Mars/Base}]',
            "schedules[0].timezone",
            "Mars",
        ),
        ("{cron: x}", "schedules", "list"),
    ],
)
def test_bad_schedules_are_errors(block, field, words):
    with pytest.raises(SpecError) as exc:
        parse(f"schedules: {block}\n{ONE}")
    assert exc.value.field == field and words in exc.value.message and exc.value.line == 1


def test_fire_times_follow_the_time_zone():
    sch = {"cron": "0 3 * * *", "branch": "main", "timezone": "Europe/Berlin"}
    summer = schedules.fire_times(sch, datetime(2026, 7, 1, 1, 5, tzinfo=UTC), 600)
    winter = schedules.fire_times(sch, datetime(2026, 1, 15, 2, 5, tzinfo=UTC), 600)
    assert [t.astimezone(UTC).hour for t in summer] == [1]  # 03:00 CEST
    assert [t.astimezone(UTC).hour for t in winter] == [2]  # 03:00 CET
    assert schedules.fire_times(sch, datetime(2026, 1, 15, 1, 5, tzinfo=UTC), 600) == []


@pytest.mark.django_db
def test_beat_starts_each_due_schedule_once(service, alice):
    text = 'schedules: [{cron: "0 3 * * *", branch: main}, {cron: "*/5 * * * *", branch: dev}]\n'
    services.save_spec(service, actor=Actor(user=alice), text=text + ONE)
    assert PipelineConfig.objects.get(service=service).known_schedules[1]["branch"] == "dev"
    at = datetime(2026, 3, 2, 3, 4, tzinfo=UTC)
    started = schedules.run_due(now=at)
    runs = PipelineRun.objects.filter(pk__in=started)
    assert sorted(runs.values_list("ref", flat=True)) == ["dev", "main"]
    assert set(runs.values_list("trigger", flat=True)) == {"schedule"}
    assert schedules.run_due(now=at) == []  # the same fire times: nothing new
    assert PipelineRun.objects.filter(service=service).count() == 2
    later = schedules.run_due(now=datetime(2026, 3, 2, 3, 6, tzinfo=UTC))
    assert list(PipelineRun.objects.filter(pk__in=later).values_list("ref", flat=True)) == ["dev"]


@pytest.mark.django_db
def test_unknown_approval_squad_is_refused_when_saved(service, alice):
    text = "stages:\n  - name: d\n    steps:\n      - name: gate\n        approval: {squad: nope}\n"
    with pytest.raises(Invalid) as exc:
        services.save_spec(service, actor=Actor(user=alice), text=text)
    assert "line 5, stages[0].steps[0].approval.squad: unknown squad 'nope'" in str(
        exc.value.errors
    )
    assert not PipelineConfig.objects.filter(service=service, spec_yaml=text).exists()


GATED = """\
stages:
  - name: build
    steps: [{name: compile, run: "echo compiled > built.txt"}]
  - name: deploy
    steps:
      - {name: gate, approval: {}, timeout: %s}
      - {name: ship, run: "test -f built.txt && echo shipped"}
"""

GATED_JOBS = """\
jobs:
  build: {steps: [{name: compile, run: "echo compiled > built.txt"}]}
  deploy:
    needs: [build]
    steps:
      - {name: prep, run: "echo mine > mine.txt"}
      - {name: gate, approval: {}}
      - {name: ship, run: "test -f mine.txt && test ! -f built.txt && echo shipped-job"}
"""


def _pending(run_pk):
    return Approval.objects.filter(run_id=run_pk, status="pending").first()


def _over(run_pk):
    return PipelineRun.objects.filter(pk=run_pk, finished_at__isnull=False).first()


def _parked(run_pk):
    """The run's approval is pending and its run (or job) parked: no worker holds it."""
    a = _pending(run_pk)
    if a is None or a.step.status != RunStatus.WAITING:
        return None
    holder = a.step.job or a.run
    return a if holder.status == RunStatus.WAITING and not holder.worker else None


def _log(run):
    return "".join(run.log_chunks.order_by("offset").values_list("text", flat=True))


@pytest.mark.django_db(transaction=True)
def test_approval_steps_park_and_free_the_only_worker(service, git_repo, alice, bob):
    """One worker process: runs waiting for approvals hold none of it, so another run
    finishes meanwhile; approve / reject / the deadline (beat) / a cancel resume them."""
    from pipelines import tasks

    git_repo.commit({"backline.yml": GATED % "1h"}, "gated")
    git_repo.branch("quick")
    git_repo.commit({"backline.yml": GATED % "1"}, "short timeout")
    git_repo.branch("plain")
    git_repo.commit({"backline.yml": ONE}, "no gate")
    git_repo.branch("jobs")
    git_repo.commit({"backline.yml": GATED_JOBS}, "gated jobs")
    git_repo.branch("bad")
    git_repo.commit(
        {"backline.yml": "stages: [{name: d, steps: [{name: g, approval: {squad: nope}}]}]\n"},
        "unknown squad",
    )
    worker = WorkerProcess(concurrency=1).start()
    system = Actor.system("test")
    try:
        yes, _ = services.trigger_run(service, actor=system, ref="main")
        no, _ = services.trigger_run(service, actor=system, ref="main")
        late, _ = services.trigger_run(service, actor=system, ref="quick")
        gone, _ = services.trigger_run(service, actor=system, ref="main")
        job_run, _ = services.trigger_run(service, actor=system, ref="jobs")
        runs = (yes, no, late, gone, job_run)
        wait_for(lambda: all(_parked(r.pk) for r in runs), 180, what="five parked approvals")
        plain, _ = services.trigger_run(service, actor=system, ref="plain")
        plain = wait_for(lambda: _over(plain.pk), 120, what="a run while five wait")
        assert plain.status == RunStatus.SUCCEEDED, plain.error
        assert PipelineRun.objects.get(pk=yes.pk).status == RunStatus.WAITING

        page = client_for(alice).get(f"/pipelines/runs/{yes.pk}/")
        assert b'id="approve-1"' in page.content and b"Waiting for approval" in page.content
        assert b"badge-waiting" in page.content
        assert b'id="approve-1"' not in client_for(bob).get(f"/pipelines/runs/{yes.pk}/").content
        refused = client_for(bob).post(f"/api/v1/runs/{yes.pk}/approve", {}, format="json")
        assert refused.status_code == 403, refused.content
        assert _parked(yes.pk) is not None  # nothing changed
        ok = client_for(alice).post(
            f"/api/v1/runs/{yes.pk}/approve", {"comment": "ship it"}, format="json"
        )
        assert ok.status_code == 200 and ok.json()["status"] == "approved", ok.content
        again = client_for(alice).post(f"/api/v1/runs/{yes.pk}/approve", {}, format="json")
        assert again.status_code == 409  # nothing pending any more
        resp = client_for(alice).post(f"/pipelines/runs/{no.pk}/reject", {"step": "1"})
        assert resp.status_code == 302
        ok = client_for(alice).post(f"/api/v1/runs/{job_run.pk}/approve", {}, format="json")
        assert ok.status_code == 200, ok.content
        services.cancel_run(gone, actor=Actor(user=alice))
        wait_for(
            lambda: Approval.objects.filter(run=late, deadline__lt=timezone.now()).exists(),
            30,
            what="the short deadline passed",
        )
        due = _pending(late.pk).pk
        assert tasks.expire_approvals() == [due]  # beat
        yes = wait_for(lambda: _over(yes.pk), 120, what="approved run")
        no = wait_for(lambda: _over(no.pk), 120, what="rejected run")
        late = wait_for(lambda: _over(late.pk), 120, what="timed-out approval")
        gone = wait_for(lambda: _over(gone.pk), 120, what="canceled while waiting")
        job_run = wait_for(lambda: _over(job_run.pk), 120, what="approved job")
        bad, _ = services.trigger_run(service, actor=system, ref="bad")
        bad = wait_for(lambda: _over(bad.pk), 120, what="unknown squad run")
    finally:
        worker.stop()
    assert yes.status == RunStatus.SUCCEEDED, (yes.error, _log(yes))
    assert [s.status for s in yes.steps.order_by("index")] == ["succeeded"] * 3
    assert "approved by alice: ship it" in _log(yes) and "shipped" in _log(yes)  # same workspace
    assert no.status == RunStatus.FAILED and "deploy/gate failed: rejected by alice" in no.error
    assert no.steps.get(name="ship").status == "canceled"
    assert late.status == RunStatus.TIMED_OUT and "timed out" in late.error
    assert "nobody approved or rejected it within 1s" in late.error
    assert Approval.objects.get(run=late).status == "timed_out"
    assert gone.status == RunStatus.CANCELED and Approval.objects.get(run=gone).status == "canceled"
    assert job_run.status == RunStatus.SUCCEEDED, job_run.error
    assert [j.status for j in job_run.jobs.order_by("index")] == ["succeeded", "succeeded"]
    assert "shipped-job" in "".join(
        job_run.jobs.get(name="deploy").log_chunks.values_list("text", flat=True)
    )
    assert bad.status == RunStatus.FAILED and "unknown squad 'nope'" in bad.error
    assert "approval.squad" in bad.error
    assert not bad.steps.exists() and not Approval.objects.filter(run=bad).exists()  # nothing ran
    events = AuditEvent.objects.filter(action__startswith="pipeline.approval.")
    assert sorted(events.values_list("action", flat=True)) == [
        "pipeline.approval.approved",
        "pipeline.approval.approved",
        "pipeline.approval.rejected",
        "pipeline.approval.timed_out",
    ]
    with pytest.raises(Conflict):
        decide_approval(yes, actor=Actor(user=alice), approve=True)
