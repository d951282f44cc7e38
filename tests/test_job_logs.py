"""One job machinery: every log endpoint (pipeline run, pipeline step, Terraform run; HTML tail
and API) answers the same shape with the same semantics, and the one writer's guarantees."""

import html
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from infra import services as infra_services
from infra.models import RunStatus as TfStatus
from infra.models import TerraformRun, Workspace
from infra.runner import RunLog as TfRunLog
from pipelines import services as pipeline_services
from pipelines.models import LogChunk, PipelineRun, RunStatus, StepRun
from pipelines.runner import RunLog as PipelineRunLog
from portal.actors import Actor
from portal.models import AuditEvent, EventDelivery, EventSubscription
from tests.conftest import client_for, token_client
from tests.factories import ServiceFactory

pytestmark = pytest.mark.django_db

KEYS = {"offset", "next_offset", "text", "complete"}
FIRST = "héllo <b>wörld</b>\n"
POLLER_RE = re.compile(
    r'<div id="log-poller" data-offset="(\d+)" data-next-offset="(\d+)" '
    r'data-complete="(true|false)"'
)
OOB_RE = re.compile(r'<pre hx-swap-oob="beforeend:#log">\n?(.*?)</pre>', re.S)


def html_answer(resp) -> dict:
    """The log answer carried by an HTML tail fragment."""
    body = resp.content.decode()
    m = POLLER_RE.search(body)
    assert m, body[:500]
    text = OOB_RE.search(body)
    return {
        "offset": int(m.group(1)),
        "next_offset": int(m.group(2)),
        "text": html.unescape(re.sub(r"<[^>]+>", "", text.group(1))) if text else "",
        "complete": m.group(3) == "true",
    }


class Job:
    """One kind of job: how to make it, write to it, finish it, and its two log URLs."""

    def __init__(self, name, api_url, html_url, writer, finish):
        self.name, self.api_url, self.html_url = name, api_url, html_url
        self.writer, self.finish = writer, finish


def pipeline_jobs(service):
    run, _ = pipeline_services.trigger_run(service, actor=Actor.system("t"), ref="main")
    run = pipeline_services.start_run(run.pk, worker="test:1")
    log = PipelineRunLog(run)
    log.write("▶ source\n")  # before the step: in the run log, not in the step's
    step = StepRun.objects.create(
        run=run, stage="build", name="compile", index=0, status=RunStatus.RUNNING,
        started_at=timezone.now(), log_offset=log.size,
    )  # fmt: skip

    def finish_step():
        StepRun.objects.filter(pk=step.pk).update(
            status=RunStatus.SUCCEEDED, finished_at=timezone.now(), log_end=log.size
        )

    def finish_run():  # after finish_step
        log.write("✔ pipeline succeeded\n")  # after the step: not in the step's log
        assert pipeline_services.finish_run(run.pk, RunStatus.SUCCEEDED)

    return [
        Job("pipeline run", f"/api/v1/runs/{run.pk}/log", f"/pipelines/runs/{run.pk}/log",
            log, finish_run),
        Job("pipeline step", f"/api/v1/runs/{run.pk}/steps/0/log",
            f"/pipelines/runs/{run.pk}/steps/0/log", log, finish_step),
    ]  # fmt: skip


def terraform_job(squad):
    ws = Workspace.objects.create(slug="net", name="Net", owner=squad, files={"main.tf": ""})
    run = TerraformRun.objects.create(workspace=ws, number=1)
    ws.lock_run = run
    ws.save(update_fields=["lock_run"])
    assert infra_services.claim(run.pk, "plan", "test:1")
    run.refresh_from_db()
    log = TfRunLog(run, TfStatus.PLANNING)

    def finish():
        assert infra_services.finish(run.pk, TfStatus.PLANNING, TfStatus.PLANNED_AND_FINISHED)

    return Job(
        "terraform run", f"/api/v1/terraform-runs/{run.pk}/log", f"/infra/runs/{run.pk}/log",
        log, finish,
    )  # fmt: skip


def test_every_log_endpoint_answers_the_same_shape(alice, squad, make_token):
    service = ServiceFactory(slug="player", owner=squad)
    jobs = [*pipeline_jobs(service), terraform_job(squad)]
    api = token_client(make_token(squad, ["pipelines:run", "infra:apply"]))
    browser = client_for(alice)

    def both(job, offset):
        """The API answer and the HTML tail's answer at ``offset``: the same dict."""
        a = api.get(f"{job.api_url}?offset={offset}")
        h = browser.get(f"{job.html_url}?offset={offset}", HTTP_HX_REQUEST="true")
        assert a.status_code == 200, (job.name, a.content)
        assert set(a.json()) == KEYS, job.name
        assert html_answer(h) == a.json(), job.name
        return a.json(), h

    jobs[0].writer.write(FIRST)  # the pipeline run and its step share a writer
    jobs[2].writer.write(FIRST)
    for job in jobs:
        start, _ = both(job, 0)
        assert start["offset"] == 0 and start["complete"] is False, job.name
        assert start["text"] == ("▶ source\n" if job.name == "pipeline run" else "") + FIRST
        assert start["next_offset"] == len(start["text"].encode()), job.name
        # from the middle of a character: the rest (its tail replaced), the same next offset
        cut = start["text"].encode().index("é".encode()) + 1
        mid, _ = both(job, cut)
        assert mid["text"] == start["text"].encode()[cut:].decode(errors="replace"), job.name
        assert mid["offset"] == cut and mid["next_offset"] == start["next_offset"], job.name
        # at the end: nothing yet, the same offset, not complete (the poller keeps polling)
        end = start["next_offset"]
        idle, h = both(job, end)
        assert idle == {"offset": end, "next_offset": end, "text": "", "complete": False}
        assert h.status_code == 200 and "hx-trigger" in h.content.decode(), job.name
        job.end = end
    jobs[0].writer.write("line two\n")
    jobs[2].writer.write("line two\n")
    for job in jobs:
        more, _ = both(job, job.end)
        assert more["text"] == "line two\n", job.name
        assert more["next_offset"] == job.end + len(b"line two\n"), job.name
        job.end = more["next_offset"]
    for job in (jobs[1], jobs[0], jobs[2]):  # the step ends first, then its run
        job.finish()
    for job in jobs:
        last, _ = both(job, job.end)  # what was written before the end, and complete
        closing = "✔ pipeline succeeded\n" if job.name == "pipeline run" else ""
        assert last["text"] == closing and last["complete"] is True, job.name
        done, h = both(job, last["next_offset"])
        assert done["text"] == "" and done["complete"] is True, job.name
        assert h.status_code == 286 and "hx-trigger" not in h.content.decode(), job.name
        # a bad offset: 400 naming it, on both doors
        bad = api.get(f"{job.api_url}?offset=-1")
        assert bad.status_code == 400 and "offset" in bad.json()["errors"], job.name
        bad = browser.get(f"{job.html_url}?offset=x", HTTP_HX_REQUEST="true")
        assert bad.status_code == 400 and b"offset must be a whole number" in bad.content


def test_a_step_that_never_started_has_an_empty_complete_log(alice, squad, make_token):
    service = ServiceFactory(slug="player", owner=squad)
    run, _ = pipeline_services.trigger_run(service, actor=Actor.system("t"), ref="main")
    StepRun.objects.create(run=run, stage="test", name="unit", index=0)
    api = token_client(make_token(squad, ["pipelines:run"]))
    answer = api.get(f"/api/v1/runs/{run.pk}/steps/0/log?offset=5").json()
    assert answer == {"offset": 5, "next_offset": 5, "text": "", "complete": False}
    pipeline_services.cancel_run(run, actor=Actor.system("t"))
    assert api.get(f"/api/v1/runs/{run.pk}/steps/0/log").json()["complete"] is True
    assert api.get(f"/api/v1/runs/{run.pk}/steps/7/log").status_code == 404
    page = client_for(alice).get(f"/pipelines/runs/{run.pk}/steps/0/log")
    assert page.status_code == 200 and "unit" in page.content.decode()


def _running(service):
    run, _ = pipeline_services.trigger_run(service, actor=Actor.system("t"), ref="main")
    return pipeline_services.start_run(run.pk, worker="test:1")


def test_writer_masks_splits_and_caps(squad):
    run = _running(ServiceFactory(slug="player", owner=squad))
    log = PipelineRunLog(run, mask=lambda t: t.replace("hunter2", "***"))
    log.write("password hunter2\n")
    big = "é" * 100_000  # 200 000 bytes: more than one chunk, cut between characters
    log.write(big)
    texts = list(LogChunk.objects.filter(run=run).order_by("offset").values_list("text", "size"))
    assert texts[0] == ("password ***\n", len("password ***\n"))
    assert len(texts) > 2 and all(size <= 64 * 1024 for _t, size in texts)
    assert "".join(t for t, _s in texts[1:]) == big
    run.refresh_from_db()
    assert run.log_size == sum(size for _t, size in texts) == log.size
    capped = PipelineRunLog(run, max_bytes=run.log_size + 10)
    capped.write("0123456789abcdef\n")
    capped.write("dropped\n")
    text, end = pipeline_services.read_log(run, log.size)
    assert text.startswith("0123456789\n[backline] log truncated") and "dropped" not in text
    run.refresh_from_db()
    assert end == run.log_size


def test_worker_transitions_write_audit_and_emit_events(squad):
    EventSubscription.objects.create(
        squad=squad, name="all", url="http://127.0.0.1:9/", secret="s" * 12,
        event_types=["pipeline.*", "infra.*"],
    )  # fmt: skip
    run = _running(ServiceFactory(slug="player", owner=squad))
    assert pipeline_services.start_run(run.pk, worker="again") is None  # claimed once
    assert pipeline_services.finish_run(run.pk, RunStatus.FAILED, "Step x failed")
    assert not pipeline_services.finish_run(run.pk, RunStatus.SUCCEEDED)  # already over
    actions = list(
        AuditEvent.objects.filter(target_id=str(run.pk), action__startswith="pipeline.run.")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["pipeline.run.started", "pipeline.run.failed"]
    types = list(EventDelivery.objects.order_by("id").values_list("event_type", flat=True))
    assert types == ["pipeline.run.queued", "pipeline.run.started", "pipeline.run.failed"]
    failed = EventDelivery.objects.get(event_type="pipeline.run.failed").payload["data"]
    assert failed["run"] == run.pk and failed["error"] == "Step x failed"


def test_the_reapers_append_a_notice_and_announce_the_loss(squad):
    run = _running(ServiceFactory(slug="player", owner=squad))
    writer = PipelineRunLog(run)
    writer.write("before the crash\n")
    # a chunk that log_size does not count (an older writer): the notice goes after it
    LogChunk.objects.create(run=run, offset=writer.size, size=5, text="half\n")
    PipelineRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert pipeline_services.reap_lost(stale_seconds=60) == [run.pk]
    assert pipeline_services.reap_lost(stale_seconds=60) == []
    run.refresh_from_db()
    text, end = pipeline_services.read_log(run, 0)
    assert run.status == RunStatus.LOST and end == run.log_size
    assert text.startswith("before the crash\nhalf\n") and "marked lost" in text
    assert AuditEvent.objects.filter(action="pipeline.run.lost", target_id=str(run.pk)).exists()

    ws = Workspace.objects.create(slug="net", name="Net", owner=squad, files={"main.tf": ""})
    tf = TerraformRun.objects.create(workspace=ws, number=1)
    ws.lock_run = tf
    ws.save(update_fields=["lock_run"])
    assert infra_services.claim(tf.pk, "plan", "test:1")
    TerraformRun.objects.filter(pk=tf.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert infra_services.reap_lost_runs(stale_seconds=60) == 1
    tf.refresh_from_db()
    ws.refresh_from_db()
    assert tf.status == TfStatus.ERRORED and tf.lost and ws.lock_run_id is None
    assert "stopped sending heartbeats" in infra_services.read_log(tf, 0)[0]
    assert AuditEvent.objects.filter(action="infra.run.lost", target_id=str(tf.pk)).exists()
