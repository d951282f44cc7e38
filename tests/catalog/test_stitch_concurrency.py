"""Two transactions stitching the same service at once (a pipeline run finishing while the
service is edited, on two workers) both succeed: the second waits for the first on the row and
writes over it, instead of failing on the read form's unique key (seen in a full run)."""

import threading

from django.db import connection, transaction

from squads import stitch
from squads.models import ServiceView
from tests.factories import ServiceFactory


def test_concurrent_stitches_of_one_service(transactional_db, squad):
    svc = ServiceFactory(slug="raced", owner=squad)
    ServiceView.objects.filter(pk=svc.pk).delete()  # as if never stitched: both insert
    first_wrote, errors = threading.Event(), []

    def stitch_in_a_transaction(hold: bool):
        try:
            with transaction.atomic():
                stitch.restitch([svc.pk])
                if hold:
                    first_wrote.set()
                    threading.Event().wait(1.0)  # keep the row uncommitted a moment
        except Exception as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)
        finally:
            connection.close()

    a = threading.Thread(target=stitch_in_a_transaction, args=(True,))
    a.start()
    assert first_wrote.wait(30)
    b = threading.Thread(target=stitch_in_a_transaction, args=(False,))
    b.start()
    a.join(60)
    b.join(60)
    assert not errors, errors
    assert ServiceView.objects.filter(pk=svc.pk).count() == 1
    assert ServiceView.objects.get(pk=svc.pk).detail["slug"] == "raced"
