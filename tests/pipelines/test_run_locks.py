"""Row locks that number a run must not block another transaction's foreign-key checks.

Seen in CI: the API numbered a run under the service's row lock (``FOR UPDATE``) and then waited
to upsert the service's read form, which a worker's transaction held; that worker's commit checks
its foreign keys to the service (``FOR KEY SHARE``), which ``FOR UPDATE`` blocks: a deadlock.
``FOR NO KEY UPDATE`` serialises the numbering just the same and lets key checks through.
"""

import threading

import pytest
from django.db import connection

from pipelines import services
from pipelines.models import PipelineConfig, PipelineRun
from portal.actors import Actor

pytestmark = pytest.mark.django_db(transaction=True)


def waiting():
    with connection.cursor() as cur:
        cur.execute(
            "SELECT wait_event_type, wait_event, left(query, 300) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return f"an insert referencing the service waited: {cur.fetchall()}"


def test_numbering_a_run_lets_other_transactions_reference_the_service(service, monkeypatch):
    locked, release, errors = threading.Event(), threading.Event(), []
    real_record = services.record

    def record_then_hold(*args, **kwargs):
        real_record(*args, **kwargs)
        locked.set()  # the run is numbered and the service row is locked: hold the transaction
        release.wait(60)

    monkeypatch.setattr(services, "record", record_then_hold)
    monkeypatch.setattr(services, "_enqueue", lambda run_id: None)

    def trigger():
        try:
            services.trigger_run(service, actor=Actor.system("test"), ref="main")
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=trigger)
    thread.start()
    try:
        assert locked.wait(30), errors
        inserted = threading.Event()

        def reference_the_service():
            # another transaction inserting a row whose foreign key names the service (plain
            # SQL: only the key check, not the read form, may meet the run's transaction)
            with connection.cursor() as cur:
                cur.execute(
                    "INSERT INTO pipelines_pipelineconfig (service_id, spec_yaml, updated_at,"
                    " updated_by) VALUES (%s, '', now(), 'test')",
                    [service.pk],
                )
            inserted.set()
            connection.close()

        other = threading.Thread(target=reference_the_service, daemon=True)
        other.start()
        # with FOR UPDATE this insert waits until the trigger's transaction ends; it must not
        assert inserted.wait(20), waiting()
    finally:
        release.set()
        thread.join(30)
    assert not errors, errors
    assert PipelineRun.objects.filter(service=service).count() == 1
    assert PipelineConfig.objects.filter(service=service).exists()
