"""HTML pages: lists, run page, live tail (286 when over), buttons, panels, board."""

import pytest
from django.test import Client
from django.utils import timezone

from pipelines import services
from pipelines.models import LogChunk, PipelineRun, StepRun
from portal.actors import Actor
from tests.factories import ServiceFactory

pytestmark = pytest.mark.django_db


def browser_for(user):
    c = Client()
    c.force_login(user)
    return c


def make_run(service, status="running", ref="main", text="\x1b[32mgreen <b>\x1b[0m\nplain\n"):
    run, _ = services.trigger_run(service, actor=Actor.system("t"), ref=ref)
    LogChunk.objects.create(run=run, offset=0, size=len(text.encode()), text=text)
    now = timezone.now()
    PipelineRun.objects.filter(pk=run.pk).update(
        status=status,
        log_size=len(text.encode()),
        started_at=now,
        finished_at=None if status in ("queued", "running") else now,
        commit_sha="a" * 40,
    )
    StepRun.objects.create(
        run=run, stage="build", name="compile", index=0, status=status, started_at=now
    )
    run.refresh_from_db()
    return run


def test_run_list_filters(alice, service, other_squad):
    other = ServiceFactory(slug="search-api", name="Search API", owner=other_squad)
    make_run(service, "failed", "feature/x")
    make_run(other, "succeeded", "main")
    c = browser_for(alice)
    page = c.get("/pipelines/").content.decode()
    assert "Player" in page and "Search API" in page
    page = c.get("/pipelines/?squad=search").content.decode()
    assert "Search API" in page and ">Player<" not in page
    page = c.get("/pipelines/?status=failed&branch=feature/x").content.decode()
    assert "feature/x" in page and "Search API" not in page
    frag = c.get("/pipelines/?status=succeeded", HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in frag and "Search API" in frag
    assert c.get("/pipelines/?status=nonsense").status_code == 200


def test_run_page_renders_ansi_and_buttons_for_owners(alice, bob, service):
    run = make_run(service, "running")
    page = browser_for(alice).get(run.get_absolute_url()).content.decode()
    assert '<span class="ansi-green">green &lt;b&gt;</span>' in page
    assert "\x1b" not in page
    assert 'id="cancel-run"' in page and "Run pipeline" in page
    assert f'hx-get="/pipelines/runs/{run.pk}/log?offset={run.log_size}"' in page
    assert "aaaaaaaaaa" in page and "build" in page and "compile" in page
    other = browser_for(bob).get(run.get_absolute_url()).content.decode()
    assert 'id="cancel-run"' not in other and "Run pipeline" not in other


def test_tail_appends_and_stops_with_286(alice, service):
    run = make_run(service, "running")
    c = browser_for(alice)
    url = f"/pipelines/runs/{run.pk}/log"
    resp = c.get(f"{url}?offset={run.log_size}", HTTP_HX_REQUEST="true")
    assert resp.status_code == 200
    assert f"offset={run.log_size}" in resp.content.decode()
    more = "next line\n"
    LogChunk.objects.create(run=run, offset=run.log_size, size=len(more), text=more)
    PipelineRun.objects.filter(pk=run.pk).update(log_size=run.log_size + len(more))
    resp = c.get(f"{url}?offset={run.log_size}", HTTP_HX_REQUEST="true")
    body = resp.content.decode()
    assert resp.status_code == 200 and "next line" in body and "green" not in body
    assert 'hx-swap-oob="beforeend:#log"' in body
    PipelineRun.objects.filter(pk=run.pk).update(status="succeeded", finished_at=timezone.now())
    resp = c.get(f"{url}?offset={run.log_size + len(more)}", HTTP_HX_REQUEST="true")
    assert resp.status_code == 286
    assert "hx-trigger" not in resp.content.decode()
    assert c.get(f"{url}?offset=abc").status_code == 400
    neg = c.get(f"{url}?offset=-5")
    assert neg.status_code == 400 and b"offset must be a whole number" in neg.content


def test_buttons_call_the_domain(alice, bob, service):
    c = browser_for(alice)
    resp = c.post(f"/pipelines/services/{service.slug}/run", {"ref": "main"})
    run = PipelineRun.objects.get()
    assert resp.status_code == 302 and resp["Location"] == run.get_absolute_url()
    assert run.trigger == "manual" and run.triggered_by == "alice"
    c.post(f"/pipelines/runs/{run.pk}/cancel")
    run.refresh_from_db()
    assert run.status == "canceled"
    c.post(f"/pipelines/runs/{run.pk}/rerun")
    assert PipelineRun.objects.count() == 2
    # bob is not in the owning squad: refused with a message, nothing happens
    resp = browser_for(bob).post(
        f"/pipelines/services/{service.slug}/run", {"ref": "main"}, follow=True
    )
    assert "Only members of the owning squad" in resp.content.decode()
    assert PipelineRun.objects.count() == 2
    resp = c.post(f"/pipelines/services/{service.slug}/run", {"ref": "bad..ref"}, follow=True)
    assert "not a valid branch" in resp.content.decode()


def test_service_pipeline_page_spec_and_secrets(alice, service):
    c = browser_for(alice)
    resp = c.post(
        f"/pipelines/services/{service.slug}/spec", {"spec": "stages: [{name: b}]"}, follow=True
    )
    assert "line 1" in resp.content.decode() and "stages[0].steps" in resp.content.decode()
    c.post(
        f"/pipelines/services/{service.slug}/secrets",
        {"name": "TOKEN", "value": "very-secret-value"},
    )
    page = c.get(f"/pipelines/services/{service.slug}/").content.decode()
    assert "TOKEN" in page and "very-secret-value" not in page
    assert "/hooks/github" in page


def test_service_panel_and_board(alice, service):
    from django.template.loader import render_to_string

    failed = make_run(service, "failed")
    c = browser_for(alice)
    panel = c.get(f"/pipelines/services/{service.slug}/panel").content.decode()
    assert f"#{failed.number}" in panel and "Run pipeline" in panel and "/hooks/github" in panel
    html = render_to_string("pipelines/service_panel.html", {"service": service, "can_write": True})
    assert f"/pipelines/services/{service.slug}/panel" in html
    board = c.get("/pipelines/board/").content.decode()
    assert "Failing pipelines" in board and "Player" in board
    home = c.get("/").content.decode()
    assert "Failing pipelines" in home


def test_service_page_includes_the_panel(alice, service):
    page = browser_for(alice).get(f"/services/{service.slug}/").content.decode()
    assert f"/pipelines/services/{service.slug}/panel" in page


def test_squad_panel(alice, service, squad):
    failed = make_run(service, "failed")
    page = browser_for(alice).get(f"/squads/{squad.slug}/").content.decode()
    assert f"/pipelines/squads/{squad.slug}/panel" in page
    body = browser_for(alice).get(f"/pipelines/squads/{squad.slug}/panel").content.decode()
    assert f"Player #{failed.number}" in body and "badge-failed" in body


def test_long_log_shows_its_end_and_raw_text_has_it_all(alice, service, monkeypatch):
    from pipelines import views

    monkeypatch.setattr(views, "LOG_PAGE_BYTES", 64)
    run = make_run(service, "failed", text="\x1b[1mfirst line\x1b[0m\n")
    offset = run.log_size
    for i in range(10):
        text = f"line {i:02d} of the long log\n"
        LogChunk.objects.create(run=run, offset=offset, size=len(text), text=text)
        offset += len(text)
    PipelineRun.objects.filter(pk=run.pk).update(log_size=offset)
    c = browser_for(alice)
    page = c.get(run.get_absolute_url()).content.decode()
    assert "line 09 of the long log" in page and "first line" not in page
    assert "showing its last part" in page
    raw = b"".join(c.get(f"/pipelines/runs/{run.pk}/log.txt").streaming_content).decode()
    assert raw.startswith("first line\n") and raw.endswith("line 09 of the long log\n")
    assert "\x1b" not in raw


def test_run_log_writer_keeps_escape_sequences_whole(service):
    from pipelines.runner import RunLog

    run, _ = services.trigger_run(service, actor=Actor.system("t"), ref="main")
    PipelineRun.objects.filter(pk=run.pk).update(status="running")
    run.refresh_from_db()
    log = RunLog(run)
    log.write("red: \x1b[3")
    log.write("1mtext\x1b[0m\n")
    texts = list(LogChunk.objects.filter(run=run).order_by("offset").values_list("text", flat=True))
    assert texts == ["red: ", "\x1b[31mtext\x1b[0m\n"]
    run.refresh_from_db()
    assert run.log_size == len("red: \x1b[31mtext\x1b[0m\n")


def test_admin_never_shows_a_secret_value(admin_user, service):
    services.set_secret(
        service, actor=Actor.system("t"), name="TOKEN", value="admin-visible-value-42"
    )
    from pipelines.models import PipelineSecret

    secret = PipelineSecret.objects.get()
    c = browser_for(admin_user)
    page = c.get(f"/admin/pipelines/pipelinesecret/{secret.pk}/change/").content.decode()
    assert "TOKEN" in page and "admin-visible-value-42" not in page
    assert c.get("/admin/pipelines/pipelinerun/").status_code == 200
