from celery import shared_task

from portal import audit
from portal.actors import Actor


@shared_task(acks_late=True)
def record_heartbeat(note: str = "worker alive") -> int:
    """A tiny real task: proves a worker is consuming and can write to the database."""
    from portal.models import AuditEvent

    event = audit.record(
        Actor.system("worker", door="worker"),
        "worker.heartbeat",
        AuditEvent(),
        target_type="worker",
        data={"note": note},
    )
    return event.pk


@shared_task(acks_late=True, ignore_result=True)
def deliver_event(delivery_pk: int):
    """One attempt of an outbound delivery of any kind (``portal.outbound``)."""
    from portal import outbound

    outbound.attempt(delivery_pk)


@shared_task(ignore_result=True)
def retry_due_deliveries():
    from portal import outbound

    return outbound.retry_due()


@shared_task(ignore_result=True)
def purge_idempotency_records():
    from portal.idempotency import purge_expired

    return purge_expired()
