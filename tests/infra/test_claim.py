"""Claiming a run is exclusive even when two workers try at the same instant (with the pg
backend any worker may take any workspace's run): the second claim waits for the first and
then finds the run no longer pending. Real PostgreSQL row locks, no worker process."""

import threading
import time

import psycopg
import pytest
from django.db import connection

from infra import services, tfstate
from infra.models import RunStatus, TerraformRun
from portal.actors import Actor

pytestmark = pytest.mark.django_db(transaction=True)


def blocked_on_a_lock(pid_of_other: int) -> bool:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> %s "
            "AND datname = current_database()",
            [pid_of_other],
        )
        return cur.fetchone()[0] > 0


def test_a_second_concurrent_claim_gets_nothing(make_workspace, alice):
    ws = make_workspace(slug="race", variables=False, files={"main.tf": ""})
    run = services.queue_run(ws, actor=Actor(user=alice))
    assert TerraformRun.objects.get(pk=run.pk).status == RunStatus.PENDING
    first = psycopg.connect(**tfstate.target().admin_conninfo())  # worker 1, mid-claim
    first.execute(
        "UPDATE infra_terraformrun SET status = 'planning', worker = 'one' WHERE id = %s",
        [run.pk],
    )
    result = {}

    def second():
        result["claimed"] = services.claim(run.pk, "plan", "two")
        from django.db import connection as own

        own.close()

    thread = threading.Thread(target=second)
    thread.start()
    deadline = time.monotonic() + 60
    while not blocked_on_a_lock(first.info.backend_pid):
        assert time.monotonic() < deadline and thread.is_alive(), "the second claim never waited"
        time.sleep(0.05)
    first.commit()
    first.close()
    thread.join(60)
    assert result == {"claimed": False}
    row = TerraformRun.objects.get(pk=run.pk)
    assert (row.status, row.worker) == (RunStatus.PLANNING, "one")
