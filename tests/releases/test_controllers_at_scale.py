"""Controllers at scale (issue 16): a beat tick costs what is due, never everything; claimed
batches are disjoint between concurrent claimers; real PostgreSQL and a real worker."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from metrics import scrape
from metrics.models import ScrapeTarget
from monitoring import evaluation
from monitoring.models import AlertRule
from releases import controller
from releases.models import Environment, Release, ReleaseEvent
from squads.models import Service
from tests.conftest import WorkerProcess

PAUSE = [{"pause": {}}]  # pending → progressing → paused (waits for a promote): no driver call


def seed(squad, n, *, due, tag="s"):
    """``n`` active releases (two environments per service), alert rules and scrape targets,
    all due now (``due``) or all waiting an hour."""
    envs = list(Environment.objects.order_by("name")[:2])
    services = Service.objects.bulk_create(
        [
            Service(slug=f"{tag}-{i}", name=f"{tag} {i}", owner=squad, lifecycle="production")
            for i in range((n + 1) // 2)
        ]
    )
    later = timezone.now() + timedelta(hours=1)
    Release.objects.bulk_create(
        [
            Release(
                service=services[i // 2],
                environment=envs[i % 2],
                version="1",
                strategy=PAUSE,
                status="pending" if due else "progressing",
                next_tick_at=None if due else later,
            )
            for i in range(n)
        ]
    )
    AlertRule.objects.bulk_create(
        [
            AlertRule(
                service=services[i // 2],
                name=f"r{i}",
                signal="error_ratio",
                threshold=0.5,
                last_evaluated_at=None if due else later,
            )
            for i in range(n)
        ]
    )
    ScrapeTarget.objects.bulk_create(
        [
            ScrapeTarget(service=s, url="http://127.0.0.1:9/metrics", next_scrape_at=later)
            for s in services
        ]
    )
    return services


def idle_queries():
    with CaptureQueriesContext(connection) as ctx:
        assert controller.dispatch() == 0
        assert controller.tick_all() == 0
        assert evaluation.dispatch() == 0
        assert scrape.claim_due() == []
    sql = [q["sql"] for q in ctx.captured_queries]
    return [q for q in sql if not q.startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]


def test_an_idle_tick_costs_the_same_at_10_and_1000(squad, default_environments):
    seed(squad, 10, due=False, tag="a")
    small = idle_queries()
    seed(squad, 990, due=False, tag="b")
    large = idle_queries()
    # three claims of releases and rules, one of targets, the alerts of disabled rules
    assert len(small) == len(large) == 5
    assert sum("UPDATE" in q and "SKIP LOCKED" in q for q in large) == 4


def test_a_tick_stops_at_a_short_batch(squad, default_environments, monkeypatch):
    """30 due releases in batches of 12: three claims (12, 12, 6) and no fourth: a short batch
    means nothing more was due when the tick started (a tick that claimed on while items fell
    due sent batches of 2 or 3 for as long as its cap allowed, issue 16). Same for rules."""
    seed(squad, 30, due=True)
    monkeypatch.setattr(controller, "CLAIM_BATCH", 12)
    monkeypatch.setattr(evaluation, "CLAIM_BATCH", 12)
    for dispatch in (controller.dispatch, evaluation.dispatch):
        with CaptureQueriesContext(connection) as ctx:
            assert dispatch() == 30  # enqueued to the real broker
        claimed = [q["sql"] for q in ctx.captured_queries if "SKIP LOCKED" in q["sql"]]
        assert len(claimed) == 3
    assert controller.claim_due() == [] and evaluation.claim_due() == []


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_claimers_never_get_the_same_release(squad, default_environments):
    seed(squad, 400, due=True)
    got = {0: [], 1: []}
    start = threading.Barrier(2)

    def claimer(k):
        start.wait()
        try:
            while ids := controller.claim_due(limit=7):
                got[k].extend(ids)
        finally:
            connection.close()

    threads = [threading.Thread(target=claimer, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    a, b = set(got[0]), set(got[1])
    assert len(got[0]) == len(a) and len(got[1]) == len(b)  # nobody claimed a row twice
    assert not a & b  # ... nor the other claimer's
    assert a | b == set(Release.objects.values_list("pk", flat=True))
    assert a and b  # both took part
    # the claim is a lease: nothing is due until it has passed
    assert controller.claim_due() == []


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_beat_tick_fans_batches_out_to_two_worker_processes(
    squad, default_environments, monkeypatch
):
    seed(squad, 300, due=True)
    monkeypatch.setattr(controller, "CLAIM_BATCH", 20)
    worker = WorkerProcess(concurrency=2).start()
    try:
        assert controller.dispatch() == 300  # 15 batches, each a drive_releases task
        assert controller.dispatch() == 0  # all claimed
        deadline = time.monotonic() + 120
        while Release.objects.filter(status="paused").count() < 300:
            assert time.monotonic() < deadline, "the workers did not drive every release"
            time.sleep(0.3)
    finally:
        worker.stop()
    # each release driven exactly once: pending → progressing → paused, two transitions
    per = ReleaseEvent.objects.filter(kind="status").values_list("release_id", flat=True)
    counts: dict = {}
    for pk in per:
        counts[pk] = counts.get(pk, 0) + 1
    assert len(counts) == 300 and set(counts.values()) == {2}
    log = worker.logfile.read_text()
    done = [ln for ln in log.splitlines() if "drive_releases" in ln and "succeeded" in ln]
    assert len(done) >= 15


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_next_tick_does_not_wait_behind_a_backlog_of_batches(
    squad, default_environments, monkeypatch
):
    """25 batches are queued before a worker starts, then beat's tick: the worker takes the
    tick from its own queue after at most a couple of batches, not after all 25 (one FIFO
    queue did that, so under a backlog every dispatcher ran once a minute)."""
    import redis
    from django.conf import settings

    from portal.celery import TICK_QUEUE, _beat_schedule, app

    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    seed(squad, 300, due=True)
    monkeypatch.setattr(controller, "CLAIM_BATCH", 12)
    assert controller.dispatch() == 300  # 25 drive_releases tasks, queued
    entry = _beat_schedule()["pipelines-tick-releases"]
    assert entry["options"]["queue"] == TICK_QUEUE
    # as beat sends it (without the expiry: the worker may take longer than that to start)
    app.send_task(entry["task"], queue=entry["options"]["queue"])
    monkeypatch.setattr(redis.Redis, "flushdb", lambda self: None)  # keep the queued tasks
    worker = WorkerProcess(concurrency=2, name="backlog")
    start = worker.logfile.stat().st_size if worker.logfile.exists() else 0  # appended to

    def log():
        return worker.logfile.read_text()[start:]

    worker.start()
    try:
        deadline = time.monotonic() + 120
        while "tick_releases" not in log() or (
            Release.objects.filter(status="paused").count() < 300
        ):
            assert time.monotonic() < deadline, "the worker did not run the tick and the batches"
            time.sleep(0.3)
    finally:
        worker.stop()
    done = [
        "tick" if "tick_releases" in ln else "batch"
        for ln in log().splitlines()
        if "succeeded" in ln and ("tick_releases" in ln or "drive_releases" in ln)
    ]
    assert done.count("batch") == 25 and done.count("tick") == 1
    assert done.index("tick") <= 4, done


def test_a_release_that_raises_in_a_batch_stops_none_of_the_others(
    squad, default_environments, monkeypatch
):
    """A batch is driven in one savepoint; when one release raises, the batch is driven again
    each release alone: the others move on, the broken one keeps its row and events."""
    seed(squad, 4, due=True, tag="br")
    ids = list(Release.objects.order_by("pk").values_list("pk", flat=True))
    broken = ids[1]
    real = controller.transition

    def transition(r, to, *args, **kwargs):
        if r.pk == broken:
            raise RuntimeError("driver exploded")
        return real(r, to, *args, **kwargs)

    monkeypatch.setattr(controller, "transition", transition)
    assert controller.drive_claimed(ids) == 3
    status = dict(Release.objects.values_list("pk", "status"))
    assert status[broken] == "pending"
    assert [status[pk] for pk in ids if pk != broken] == ["paused"] * 3
    assert not ReleaseEvent.objects.filter(release_id=broken).exists()
    # pending -> progressing -> paused: two status events each, none written twice
    assert ReleaseEvent.objects.filter(release_id__in=ids).count() == 6
