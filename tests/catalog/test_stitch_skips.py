"""Writes the read form cannot show stitch nothing, and skipping them loses nothing: a pipeline
run created and started without a spec is outside every row the scorecard reads (finished runs,
runs with a spec), so its creation and its queued -> running move leave the stored read form
exactly as a full re-stitch would build it; its finish, a spec, a finished run sent back to
queued and a run moved to another service still re-stitch (and are read back at once)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from pipelines.models import PipelineRun, RunStatus
from squads import stitch
from squads.models import ServiceView
from tests.conftest import client_for
from tests.factories import ServiceFactory

STORED = ("row", "detail", "scorecard", "level", "document", "updated_at")


@pytest.fixture
def stitched(monkeypatch):
    """The service ids of every stitch from here on, full or of the scorecard only."""
    calls = []
    full, cards = stitch._stitch, stitch._stitch_cards
    monkeypatch.setattr(stitch, "_stitch", lambda ids: (calls.append(list(ids)), full(ids))[1])
    monkeypatch.setattr(
        stitch, "_stitch_cards", lambda ids, keys: (calls.append(list(ids)), cards(ids, keys))[1]
    )
    return calls


def _stored(svc):
    return ServiceView.objects.filter(pk=svc.pk).values(*STORED).get()


def _rule(charlie, svc, key):
    resp = client_for(charlie).get(f"/api/v1/services/{svc.slug}/scorecard/")
    assert resp.status_code == 200, resp.content
    return {r["key"]: r["passed"] for r in resp.json()["rules"]}[key]


def _assert_up_to_date(svc):
    """The stored read form equals the one a full re-stitch builds now."""
    before = _stored(svc)
    with stitch.batch_off():
        stitch.restitch([svc.pk])
    assert _stored(svc) == before


def test_a_run_queued_and_started_stitches_nothing_and_its_finish_does(
    db, squad, charlie, stitched
):
    svc = ServiceFactory(slug="churned", owner=squad, type="service")
    stitched.clear()
    run = PipelineRun.objects.create(service=svc, ref=svc.default_branch, number=1)
    PipelineRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING, commit_sha="abc123"
    )
    run.refresh_from_db()
    run.number = 2
    run.save(update_fields=["number"])  # a column the list reads live, not the read form
    assert stitched == []
    _assert_up_to_date(svc)  # skipping them was a no-op
    stitched.clear()

    PipelineRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
        status=RunStatus.SUCCEEDED
    )
    assert stitched == [[svc.pk]]
    assert _rule(charlie, svc, "default_branch_green") is True
    _assert_up_to_date(svc)


def test_a_run_with_a_spec_restitches_when_created(db, squad, charlie, stitched):
    svc = ServiceFactory(slug="specced", owner=squad, type="service")
    assert _rule(charlie, svc, "has_pipeline") is False
    stitched.clear()
    PipelineRun.objects.create(service=svc, ref="main", number=1, spec={"stages": []})
    assert stitched == [[svc.pk]]
    assert _rule(charlie, svc, "has_pipeline") is True


@pytest.mark.parametrize("how", ["update", "save"])
def test_a_finished_run_sent_back_to_queued_restitches(db, squad, charlie, how):
    svc = ServiceFactory(slug="requeued", owner=squad, type="service")
    run = PipelineRun.objects.create(
        service=svc, ref=svc.default_branch, number=1, status=RunStatus.SUCCEEDED
    )
    assert _rule(charlie, svc, "default_branch_green") is True
    if how == "update":
        PipelineRun.objects.filter(pk=run.pk).update(status=RunStatus.QUEUED)
    else:
        run.status = RunStatus.QUEUED
        run.save(update_fields=["status"])
    assert _rule(charlie, svc, "default_branch_green") is False
    _assert_up_to_date(svc)


def test_a_run_saved_onto_another_service_restitches_both(db, squad, charlie, stitched):
    first = ServiceFactory(slug="first", owner=squad, type="service")
    second = ServiceFactory(slug="second", owner=squad, type="service")
    run = PipelineRun.objects.create(
        service=first, ref=first.default_branch, number=1, status=RunStatus.SUCCEEDED
    )
    assert _rule(charlie, first, "default_branch_green") is True
    stitched.clear()
    run.service = second
    run.save(update_fields=["service"])
    assert sorted(stitched[-1]) == sorted([first.pk, second.pk])
    assert _rule(charlie, first, "default_branch_green") is False
    assert _rule(charlie, second, "default_branch_green") is True
    _assert_up_to_date(first)
    _assert_up_to_date(second)


def _queries(fn):
    with CaptureQueriesContext(connection) as ctx:
        fn()
    return len(ctx.captured_queries)


def test_a_scorecard_only_stitch_equals_a_full_one_in_fewer_queries(db, squad, stitched):
    svc = ServiceFactory(slug="carded", owner=squad, type="service")
    ServiceFactory(slug="dependent", owner=squad).dependencies.create(target_service=svc)
    PipelineRun.objects.create(
        service=svc, ref=svc.default_branch, number=1, status=RunStatus.SUCCEEDED
    )
    assert _stored(svc)["scorecard"]["rules"]  # stitched, scorecard-only
    _assert_up_to_date(svc)
    cards = _queries(lambda: stitch._stitch_cards([svc.pk], frozenset({"pipelines"})))
    full = _queries(lambda: stitch._stitch([svc.pk]))
    assert cards < full - 5, (cards, full)


def test_a_scorecard_only_stitch_of_stale_rules_stitches_in_full(db, squad, stitched):
    svc = ServiceFactory(slug="stale-rules", owner=squad, type="service")
    view = ServiceView.objects.get(pk=svc.pk)
    view.scorecard = {**view.scorecard, "rules": view.scorecard["rules"][1:]}  # a rule since
    view.save(update_fields=["scorecard"])
    stitched.clear()
    PipelineRun.objects.create(
        service=svc, ref=svc.default_branch, number=1, status=RunStatus.SUCCEEDED
    )
    assert stitched == [[svc.pk], [svc.pk]]  # the scorecard-only one handed over to a full one
    _assert_up_to_date(svc)
    assert len(_stored(svc)["scorecard"]["rules"]) == len(view.scorecard["rules"]) + 1
