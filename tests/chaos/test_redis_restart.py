"""Restart Redis (the broker) while pipeline runs are queued: the queued messages are gone
(a private ``redis-server --save ""`` on a free loopback port, never the shared one), yet every
queued run still runs, exactly once: the beat task re-sends runs left queued, and a worker claims
a run with a conditional UPDATE so a duplicate message is a no-op."""

import subprocess
import time

import pytest

from tests.chaos.conftest import ROUNDS, free_port, record, wait_for
from tests.conftest import WorkerProcess

pytestmark = [pytest.mark.chaos, pytest.mark.worker, pytest.mark.django_db(transaction=True)]
RUNS_PER_ROUND = 4


class RedisServer:
    def __init__(self, tmp_path):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tmp_path
        self.proc = None

    def start(self):
        import redis

        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        wait_for(lambda: _ping(client), 10, "redis-server to answer")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _ping(client):
    try:
        return client.ping()
    except Exception:  # noqa: BLE001 - not up yet
        return False


@pytest.fixture
def private_broker(tmp_path, settings):
    """A private Redis; this process's Celery producer and the test worker both use it."""
    from portal.celery import app

    server = RedisServer(tmp_path).start()
    old = (app.conf.broker_url, settings.REDIS_URL)
    settings.REDIS_URL = server.url
    app.conf.broker_url = server.url
    app._pool = None
    app.amqp._producer_pool = None
    yield server
    server.stop()
    app.conf.broker_url, settings.REDIS_URL = old
    app._pool = None
    app.amqp._producer_pool = None


def test_redis_restart_while_runs_are_queued(
    private_broker, squad, tmp_path, monkeypatch, settings
):
    import redis

    from pipelines import services, tasks
    from pipelines.models import PipelineRun, RunStatus
    from portal.actors import Actor
    from tests.factories import ServiceFactory
    from tests.pipelines.conftest import GitRepo

    monkeypatch.setenv("PIPELINES_REQUEUE_AFTER_SECONDS", "2")
    settings.PIPELINES_REQUEUE_AFTER_SECONDS = 2.0  # reap_lost_runs() runs in this process too
    # steps count their executions in a ledger file of this test's folder: not visible from
    # inside the sandbox
    monkeypatch.setenv("BACKLINE_SANDBOX", "none")
    settings.SANDBOX = "none"
    root = tmp_path / "workspaces"
    monkeypatch.setenv("BACKLINE_WORKSPACE_ROOT", str(root))
    settings.WORKSPACE_ROOT = root
    ledger = tmp_path / "ledger"
    ledger.touch()
    repo = GitRepo(tmp_path / "repo")
    repo.commit(
        {
            "backline.yml": "stages:\n  - name: main\n    steps:\n      - name: once\n"
            f'        run: "echo $BACKLINE_RUN_ID >> {ledger}; sleep 1"\n'
        },
        "first",
    )
    service = ServiceFactory(slug="queued-svc", owner=squad, repository_url=repo.url)
    actor = Actor.system("chaos")
    worker = WorkerProcess(concurrency=1).start()
    all_ids, lost_messages, worst = [], 0, 0.0
    try:
        for i in range(ROUNDS):
            ids = [
                services.trigger_run(service, actor=actor, ref="main")[0].pk
                for _ in range(RUNS_PER_ROUND)
            ]
            all_ids += ids
            client = redis.Redis.from_url(private_broker.url)
            wait_for(lambda c=client: c.llen("celery") >= 1, 20, "messages waiting in Redis")
            lost_messages += client.llen("celery") + client.hlen("unacked")
            private_broker.stop()  # every queued message is gone (no persistence)
            time.sleep(0.5)
            private_broker.start()
            restarted = time.monotonic()

            def all_done(ids=ids):
                tasks.reap_lost_runs()  # the beat task: re-sends runs left queued
                return (
                    not PipelineRun.objects.filter(pk__in=ids)
                    .exclude(status__in=[RunStatus.SUCCEEDED, RunStatus.FAILED])
                    .exists()
                )

            wait_for(all_done, 120, f"round {i}: every queued run to finish", interval=1.0)
            worst = max(worst, time.monotonic() - restarted)
    finally:
        worker.stop()
    runs = PipelineRun.objects.filter(pk__in=all_ids)
    assert all(r.status == RunStatus.SUCCEEDED for r in runs), [(r.pk, r.status) for r in runs]
    executed = ledger.read_text().split()
    counts = {str(pk): executed.count(str(pk)) for pk in all_ids}
    assert all(n == 1 for n in counts.values()), counts  # each ran exactly once
    assert len(executed) == len(all_ids)
    record(
        "restart Redis (broker) with pipeline runs queued",
        ROUNDS,
        f"{lost_messages} broker messages dropped; all {len(all_ids)} runs ran exactly once "
        f"(slowest round done {worst:.0f}s after the restart)",
        lost=sum(1 for n in counts.values() if n != 1),
    )
