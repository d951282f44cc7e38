"""No network inside the release row lock: Promote records the wanted weight and answers at
once; a real Celery worker makes the (slow) webhook-driver call after commit, while the row
stays unlocked; the deployer gets the call exactly once and the release reaches that state."""

import threading
import time

import pytest
from django.db import connection, transaction
from django.urls import reverse

from releases.models import Release
from tests.conftest import WorkerProcess, client_for
from tests.releases.conftest import settle


def _post_in_a_thread(client, url, body):
    """``client.post`` in a thread (its own DB connection): the answer, once there, in ``box``."""
    box: dict = {}

    def call():
        try:
            box["resp"] = client.post(url, body, format="json")
        finally:
            connection.close()

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread, box


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_promote_answers_at_once_while_a_slow_deployer_takes_10_s(
    paused_release, webhook_env, deployer, alice
):
    """The deployer holds the call until the test lets it go, which it does only after the
    promote has answered: an answer that waited for the deployer never comes."""
    webhook_env.driver_config = {**webhook_env.driver_config, "timeout": 120, "retries": 1}
    webhook_env.save()
    r = paused_release()  # paused at step 2 (index 1), 10 %
    assert r.weight == 10 and not r.applying
    deployer.mode, deployer.slow_on = "hold", ("set_weight", 30)
    worker = WorkerProcess(concurrency=2).start()
    try:
        c = client_for(alice)
        thread, box = _post_in_a_thread(c, f"/api/v1/releases/{r.pk}/promote", {"step": 1})
        thread.join(60)
        assert "resp" in box, "promote did not answer while the deployer held the call"
        resp = box["resp"]
        assert resp.status_code == 200, resp.content
        body = resp.json()
        assert body["applying"] and body["driver_call"]["weight"] == 30 and body["weight"] == 10
        # the worker is inside the deployer call now ...
        assert deployer.holding.wait(60), "the worker never called the deployer"
        assert [c["weight"] for c in deployer.actions("set_weight")] == [10, 30]
        # ... and the release row is not locked meanwhile
        with transaction.atomic():
            locked = Release.objects.select_for_update(nowait=True).get(pk=r.pk)
            assert locked.applying and locked.weight == 10
        page = c.get(reverse("releases:release_detail", args=[r.pk])).content.decode()
        assert "applying" in page and "moving to 30 %" in page
        assert not deployer.release.is_set()  # all of the above while the deployer held on
        # the deployer answers: the release reaches the wanted state
        deployer.release.set()
        deadline = time.monotonic() + 60
        while True:
            r = Release.objects.get(pk=r.pk)
            if r.status == "paused" and r.weight == 30 and not r.applying:
                break
            assert time.monotonic() < deadline, (r.status, r.weight, r.driver_call, r.driver_error)
            time.sleep(0.2)
    finally:
        deployer.release.set()
        worker.stop()
    assert r.step_index == 3
    assert [c["weight"] for c in deployer.actions("set_weight")] == [10, 30]  # exactly once
    assert all(c["valid"] for c in deployer.actions())


def test_same_wanted_state_twice_is_one_driver_call(paused_release, alice, deployer):
    from portal.actors import Actor
    from releases import services, sync

    r = paused_release()
    r = services.promote_release(r, actor=Actor(user=alice), step=1)
    assert r.applying and r.weight == 10
    call = dict(r.driver_call)
    # two workers (the task after commit and beat's safety net) hand the same call over
    r = settle(r)
    assert r.weight == 30 and not r.applying and r.status == "paused"
    sync.confirm(r.pk, call["id"], ok=True)  # a late duplicate confirmation changes nothing
    assert Release.objects.get(pk=r.pk).weight == 30
    from releases.drivers import get_driver

    get_driver(r.environment).request(Release.objects.get(pk=r.pk), call)
    assert [c["weight"] for c in deployer.actions("set_weight")] == [10, 30]
