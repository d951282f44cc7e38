"""Real releases: the `local` driver moves the demo fleet's traffic, the builtin backend
scrapes the real processes, the controller is ticked like beat does."""

import time

from django.conf import settings

from monitoring.fleet import WEIGHTS_SUBDIR
from portal.actors import Actor
from portal.models import AuditEvent
from releases import services
from releases.drivers import read_weight
from releases.models import AnalysisRun, Measurement, Release, ReleaseEvent
from tests.conftest import client_for
from tests.releases.conftest import drive_until, settle, wait_for_traffic

# the first measurement comes one interval after the weight moves: 3 s of canary traffic at
# 25 % of 40 rps is ~30 requests, well above min_requests even on a loaded machine (at 1.5 s
# the window held ~5 and the test flaked)
FAST = {"interval": 3, "count": 2, "window": 5, "min_requests": 5}
STEPS = [
    {"set_weight": 25},
    {"analysis": {"template": "golden-signals", **FAST}},
    {"pause": {}},
    {"set_weight": 50},
    {"analysis": {"template": "golden-signals", **FAST}},
    {"pause": {}},
    {"set_weight": 100},
]


def _start(service, env, user, version, **kw):
    """Start a release and apply its first driver call, as the worker does after commit."""
    return settle(
        services.create_release(
            service, actor=Actor(user=user, door="ui"), environment=env, version=version, **kw
        )
    )


def test_healthy_canary_is_promoted_step_by_step(traffic, local_env, alice):
    t = traffic()
    wait_for_traffic(t.service)
    r = _start(t.service, local_env, alice, "2.0.0", steps=STEPS)
    assert r.status == "progressing" and r.weight == 25
    assert read_weight("playback-api") == 25
    r = drive_until(r, lambda r: r.status == "paused", timeout=30)
    assert r.step_index == 2 and r.weight == 25, r.message
    run = AnalysisRun.objects.get(release=r, step_index=1)
    assert run.status == "successful"
    ms = list(Measurement.objects.filter(analysis_run=run))
    assert len(ms) == 4 and all(m.phase == "successful" for m in ms)  # 2 metrics × count 2
    err = [m for m in ms if m.metric == "error-ratio"]
    assert all(m.value == 0.0 and m.canary_requests >= 5 for m in err)
    page = client_for(alice).get(r.get_absolute_url(), HTTP_HX_REQUEST="true").content.decode()
    assert "canary error ratio ≤ 5 %" in page and "canary p99 ≤ 1000 ms" in page
    assert page.count('class="phase-successful">pass') == 2 and "All 4 measurements" in page
    assert "chart-error-ratio" in page and "chart-p99" in page
    canary_before = t.sent("canary")
    assert canary_before > 0  # the canary process really served traffic

    r = services.promote_release(r, actor=Actor(user=alice, door="api"), step=r.step_index)
    assert r.status == "progressing" and r.applying and read_weight("playback-api") == 25
    r = settle(r)
    assert r.status == "progressing" and r.weight == 50 and read_weight("playback-api") == 50
    r = drive_until(r, lambda r: r.status == "paused", timeout=30)
    assert r.step_index == 5 and r.weight == 50
    r = settle(services.promote_release(r, actor=Actor(user=alice, door="api"), step=r.step_index))
    assert r.status == "succeeded" and r.weight == 100
    # promoted: the new version is stable, the canary slot idles
    assert read_weight("playback-api") == 0
    assert [e.to_status for e in ReleaseEvent.objects.filter(release=r, kind="status")] == [
        "progressing",
        "paused",
        "progressing",
        "paused",
        "progressing",
        "succeeded",
    ]
    assert AuditEvent.objects.filter(action="release.promote", door="api").count() == 2


def test_unhealthy_canary_fails_analysis_and_rolls_back(traffic, local_env, alice):
    t = traffic()
    wait_for_traffic(t.service)
    r = _start(
        t.service, local_env, alice, "2.1.0-bad", steps=STEPS, deploy_params={"error_rate": 0.6}
    )
    assert r.weight == 25
    r = drive_until(r, lambda r: r.status == "failed", timeout=30)
    assert r.weight == 0 and r.desired_weight == 0 and r.driver_action == ""
    assert read_weight("playback-api") == 0
    assert "error-ratio failed" in r.message, r.message
    m = Measurement.objects.filter(analysis_run__release=r, metric="error-ratio").last()
    assert m.phase == "failed" and m.value > m.threshold == 0.05
    # traffic really went back to stable: the canary gets nothing any more
    time.sleep(0.8)  # the fleet re-reads the weight file every 0.5 s
    before = t.sent("canary")
    time.sleep(1.5)
    assert t.sent("canary") == before
    # and the canary process behaves like stable again
    assert t.fleet.set_behaviour("playback-api", "canary")["error_rate"] == 0.0
    assert (settings.VAR_DIR / WEIGHTS_SUBDIR / "playback-api").read_text() == "0"


def test_no_traffic_is_inconclusive_and_pauses(traffic, local_env, alice):
    t = traffic(with_traffic=False)
    r = _start(t.service, local_env, alice, "2.2.0", steps=STEPS)
    r = drive_until(r, lambda r: r.status != "progressing", timeout=20)
    assert r.status == "paused" and r.step_index == 1  # still at the analysis step
    assert "inconclusive" in r.message and "too little canary traffic" in r.message
    run = AnalysisRun.objects.get(release=r)
    assert run.status == "inconclusive"
    assert Measurement.objects.filter(analysis_run=run, phase="inconclusive").exists()
    assert not Measurement.objects.filter(analysis_run=run, phase="successful").exists()
    # a human decides: retry repeats the analysis (still no traffic → paused again)
    r = services.retry_release(r, actor=Actor(user=alice))
    assert r.status == "progressing" and r.generation == 2
    r = drive_until(r, lambda r: r.status == "paused", timeout=20)
    assert AnalysisRun.objects.filter(release=r).count() == 2
    assert Release.objects.get(pk=r.pk).weight == 25
