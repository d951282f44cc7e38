"""The webhook driver against a local deployer that checks signatures (and its failures), and
a real Celery worker + beat killed in the middle of a release."""

import time

import pytest
from django.db import connection, transaction

from portal import outbound
from portal.actors import Actor
from portal.models import EventDelivery
from releases import controller, services
from releases.drivers import DriverError, WebhookDriver
from releases.models import Environment, Release, ReleaseEvent
from tests.conftest import WorkerProcess
from tests.releases.conftest import SECRET, drive_until, settle

STEPS = [{"set_weight": 20}, {"pause": {"duration": 0.5}}, {"set_weight": 40}]


def test_signed_calls_and_bad_secret(playback_api, webhook_env, deployer, alice):
    r = services.create_release(
        playback_api,
        actor=Actor(user=alice),
        environment=webhook_env,
        version="1.2.3",
        steps=STEPS,
        commit="abc123",
    )
    r = drive_until(r, lambda r: r.status == "succeeded", timeout=10)
    calls = deployer.actions()
    assert [(c["action"], c["weight"]) for c in calls] == [
        ("set_weight", 20),
        ("set_weight", 40),
        ("promote", 100),
    ]
    assert all(c["valid"] for c in calls)
    assert calls[0]["event"] == "deploy.set_weight"
    assert calls[0]["release"] == {
        "id": r.pk,
        "service": "playback-api",
        "version": "1.2.3",
        "commit": "abc123",
        "environment": "hooked",
    }
    assert WebhookDriver(webhook_env).status(r).weight == 0
    # a wrong secret: the deployer refuses (401) and the driver reports it
    wrong = Environment(
        name="x",
        driver="webhook",
        driver_config={"url": deployer.url, "secret": "nope", "retries": 0},
    )
    with pytest.raises(DriverError, match="HTTP 401"):
        WebhookDriver(wrong).set_weight(r, 10)
    assert deployer.actions()[-1]["valid"] is False


def _retry_open_calls(r):
    """The retries a worker would make when their countdown is over."""
    open_ = EventDelivery.objects.filter(kind="deploy", ref=f"release:{r.pk}", status="retrying")
    for d in open_:
        outbound.attempt(d.pk)
    return Release.objects.get(pk=r.pk)


@pytest.mark.parametrize("mode", ["fail", "slow"])
def test_deployer_failures_do_not_advance(playback_api, webhook_env, deployer, alice, mode):
    deployer.mode = mode
    deployer.slow_seconds = 1.0  # driver timeout is 0.5 s
    r = services.create_release(
        playback_api, actor=Actor(user=alice), environment=webhook_env, version="1.0.0", steps=STEPS
    )
    r = settle(r)  # the first attempt fails; its retry is scheduled (a Celery countdown)
    # ... not waited for here: one attempt made, its retry left open for a worker
    assert len(deployer.actions("set_weight")) == 1
    open_ = EventDelivery.objects.filter(kind="deploy", ref=f"release:{r.pk}", status="retrying")
    assert open_.count() == 1
    assert r.status == "progressing" and r.step_index == 0 and r.weight == 0 and r.applying
    r = _retry_open_calls(r)  # the retry fails too (retries: 1): the call failed for good
    expected = "HTTP 500" if mode == "fail" else "timed out"
    assert expected in r.driver_error and r.driver_failures == 1 and not r.applying
    attempts = deployer.actions("set_weight")
    assert len(attempts) == 2  # retries: 1
    assert len({a["delivery"] for a in attempts}) == 1  # the same delivery id on a retry
    # beat comes back later: still failing, still not advanced
    Release.objects.filter(pk=r.pk).update(next_tick_at=None)
    controller.tick_all()
    r = _retry_open_calls(settle(r))
    assert r.weight == 0 and r.step_index == 0 and r.driver_failures == 2
    assert len({a["delivery"] for a in deployer.actions("set_weight")}) == 2  # a new call
    # the deployer recovers: the release carries on
    deployer.mode = "ok"
    Release.objects.filter(pk=r.pk).update(next_tick_at=None)
    r = drive_until(r, lambda r: r.status == "succeeded" and not r.applying, timeout=10)
    assert r.driver_error == "" and r.weight == 100
    # abort while the deployer is down: aborted, rollback owed and retried until it lands
    r2 = services.create_release(
        playback_api,
        actor=Actor(user=alice),
        environment=webhook_env,
        version="1.0.1",
        steps=[{"set_weight": 20}, {"pause": {}}],
    )
    r2 = settle(r2)
    assert r2.status == "paused" and r2.weight == 20
    deployer.mode = "fail"
    r2 = settle(services.abort_release(r2, actor=Actor(user=alice)))
    assert r2.status == "aborted" and r2.driver_action == "rollback" and r2.weight == 20
    assert r2.applying and r2.driver_call["action"] == "rollback"
    deployer.mode = "ok"
    r2 = _retry_open_calls(r2)
    assert r2.driver_action == "" and not r2.applying
    assert r2.weight == 0 and deployer.actions()[-1]["action"] == "rollback"


@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_release_then_beat_carries_on(
    playback_api, webhook_env, deployer, alice, monkeypatch, tmp_path
):
    monkeypatch.setenv("RELEASES_TICK_SECONDS", "0.5")
    webhook_env.driver_config = {**webhook_env.driver_config, "timeout": 10, "retries": 0}
    webhook_env.save()
    steps = [
        {"set_weight": 20},
        {"pause": {"duration": 1}},
        {"set_weight": 40},
        {"pause": {"duration": 1}},
        {"set_weight": 60},
    ]
    r = services.create_release(
        playback_api, actor=Actor(user=alice), environment=webhook_env, version="4.0.0", steps=steps
    )
    r = settle(r)  # the worker's job after commit (its message goes with the flushed broker)
    assert r.status == "paused" and r.weight == 20
    # the worker will hang inside the deployer call that moves traffic to 40 %
    deployer.mode, deployer.slow_on, deployer.slow_seconds = "slow", ("set_weight", 40), 30
    args = ["-B", "-s", str(tmp_path / "beat-schedule")]
    worker = WorkerProcess(concurrency=1, extra_args=args).start()
    try:
        deadline = time.monotonic() + 20
        while not deployer.actions("set_weight")[1:] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(deployer.actions("set_weight")) == 2, "the worker never called the deployer"
        worker.kill()
    finally:
        worker.stop()
    # consistent: what the database says is what was confirmed (20 %, 40 % still wanted), and
    # no lock is left behind (none was held during the call)
    with transaction.atomic():
        locked = Release.objects.select_for_update(nowait=True).get(pk=r.pk)
    assert locked.status == "progressing" and locked.step_index == 2 and locked.weight == 20
    assert locked.driver_call["weight"] == 40
    assert not ReleaseEvent.objects.filter(release=r, weight=40).exists()
    connection.close()
    deployer.mode = "ok"
    worker = WorkerProcess(concurrency=1, extra_args=args).start()
    try:
        deadline = time.monotonic() + 40
        while True:  # succeeded, and the driver confirmed the promote
            now = Release.objects.get(pk=r.pk)
            if now.status == "succeeded" and not now.applying:
                break
            assert time.monotonic() < deadline, now.__dict__
            time.sleep(0.3)
    finally:
        worker.stop()
    r.refresh_from_db()
    assert r.weight == 100
    # nothing repeated in the record: one weight change per step, one success
    weights = list(
        ReleaseEvent.objects.filter(release=r, kind="weight").values_list("message", flat=True)
    )
    assert weights == [
        "canary weight 20 %",
        "canary weight 40 %",
        "canary weight 60 %",
        "new version promoted to stable",
    ]
    assert ReleaseEvent.objects.filter(release=r, to_status="succeeded").count() == 1
    # the call in flight when the worker died was simply made again (idempotent set_weight)
    assert [c["weight"] for c in deployer.actions("set_weight")] == [20, 40, 40, 60]
    assert SECRET
