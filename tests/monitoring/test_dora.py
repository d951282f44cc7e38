"""DORA: the pure functions with hand-made records, and the API over real rows."""

from datetime import UTC, datetime, timedelta

import pytest

from monitoring import dora
from monitoring.dora import Deployment, Incident
from monitoring.models import Alert, AlertRule
from tests.conftest import client_for
from tests.factories import ServiceFactory

END = datetime(2026, 3, 31, tzinfo=UTC)
START = END - timedelta(days=30)


def test_levels_follow_the_documented_thresholds():
    assert dora.level("deployment_frequency", 3) == "elite"
    assert dora.level("deployment_frequency", 1) == "elite"  # on the threshold: the better level
    assert dora.level("deployment_frequency", 0.5) == "high"
    assert dora.level("deployment_frequency", 0.05) == "medium"
    assert dora.level("deployment_frequency", 0.01) == "low"
    assert dora.level("lead_time", 3600) == "elite"
    assert dora.level("lead_time", 3 * 86400) == "high"
    assert dora.level("change_failure_rate", 0.2) == "high"
    assert dora.level("change_failure_rate", 0.6) == "low"
    assert dora.level("time_to_restore", 1800) == "elite"
    assert dora.level("time_to_restore", 8 * 86400) == "low"
    assert dora.level("time_to_restore", None) is None


def test_metrics_from_records():
    deps = [
        Deployment(1, START + timedelta(days=d, hours=2), START + timedelta(days=d), False)
        for d in range(0, 30, 3)  # 10 deployments, each 2 h after the change entered
    ]
    deps.append(Deployment(1, START + timedelta(days=29), None, True))  # an aborted change
    incidents = [
        # 30 min after the day-3 deployment: that change failed
        Incident(
            1, START + timedelta(days=3, hours=2, minutes=30), START + timedelta(days=3, hours=3)
        ),
        # another service: does not count against service 1's deployments
        Incident(2, START + timedelta(days=6, hours=3), START + timedelta(days=6, hours=5)),
        Incident(1, START + timedelta(days=20), None),  # still open
    ]
    m = dora.compute(deps, incidents, START, END)
    assert m["deployments"] == 11 and m["incidents"] == 3 and m["open_incidents"] == 1
    assert m["deployment_frequency"]["value"] == pytest.approx(10 / 30)
    assert m["deployment_frequency"]["level"] == "high"
    assert m["lead_time"]["value"] == 7200 and m["lead_time"]["level"] == "elite"
    # failed: the aborted one, the day-3 one (incident after it), the day-18 one (open incident
    # on day 20 falls within 24 h? no: day 18 + 2 h + 24 h < day 20) → 2 of 11
    assert m["change_failure_rate"]["value"] == pytest.approx(2 / 11)
    assert m["change_failure_rate"]["level"] == "high"
    # restore: median of 30 min and 2 h
    assert m["time_to_restore"]["value"] == pytest.approx((1800 + 7200) / 2)
    assert m["time_to_restore"]["level"] == "high"
    empty = dora.compute([], [], START, END)
    assert empty["lead_time"]["value"] is None and empty["change_failure_rate"]["level"] is None
    assert empty["deployment_frequency"]["value"] == 0
    assert empty["deployment_frequency"]["level"] == "low"


def test_trend_splits_the_window():
    deps = [
        Deployment(1, START + timedelta(days=d, hours=1), START + timedelta(days=d))
        for d in range(20, 30)
    ]
    periods = dora.trend(deps, [], END, 30, buckets=3)
    assert [p["deployments"] for p in periods] == [0, 0, 10]
    assert periods[0]["start"] == START and periods[-1]["end"] == END


def test_dora_api_over_real_rows(squad, alice, charlie):
    svc = ServiceFactory(slug="dora-svc", owner=squad)
    rule = AlertRule.objects.create(service=svc, name="x", signal="error_ratio", threshold=0.1)
    now = datetime.now(UTC)
    Alert.objects.create(
        rule=rule,
        service=svc,
        severity="critical",
        state="resolved",
        started_at=now - timedelta(days=2, minutes=1),
        fired_at=now - timedelta(days=2),
        resolved_at=now - timedelta(days=2) + timedelta(minutes=40),
    )
    from pipelines.models import PipelineRun

    for days_ago, ref, status in (
        (5, "main", "succeeded"),
        (3, "main", "succeeded"),
        (3, "feature-x", "succeeded"),
        (1, "main", "failed"),
    ):
        created = now - timedelta(days=days_ago, hours=1)
        PipelineRun.objects.create(
            service=svc,
            status=status,
            ref=ref,
            created_at=created,
            started_at=created,
            finished_at=created + timedelta(hours=1),
        )
    c = client_for(charlie)
    r = c.get("/api/v1/dora/?squad=playback&days=30")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["squad"] == "playback" and body["days"] == 30
    assert body["deployment_source"] == "deployments_from_pipeline_runs"
    assert body["metrics"]["time_to_restore"]["value"] == pytest.approx(2400)
    assert body["metrics"]["time_to_restore"]["level"] == "elite"
    # only the successful runs on the default branch are deployments
    assert body["metrics"]["deployments"] == 2
    assert body["metrics"]["lead_time"]["value"] == pytest.approx(3600)
    assert body["metrics"]["deployment_frequency"]["value"] == pytest.approx(2 / 30)
    assert len(body["trend"]) == 4
    for bad, field in (
        ("days=0", "days"),
        ("days=abc", "days"),
        ("", "squad"),
        ("squad=nope", "squad"),
    ):
        r = c.get(f"/api/v1/dora/?{bad}")
        assert r.status_code == 400 and field in r.json()["errors"], (bad, r.content)
    page = client_for(alice).get("/dashboards/squads/playback/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "DORA metrics" in html and "40 min" in html
