from celery import shared_task

from portal import audit, outbound
from portal.actors import Actor
from portal.idempotency import purge_expired
from portal.models import AuditEvent


@shared_task(acks_late=True)
def record_heartbeat(note: str = "worker alive") -> int:
    """A tiny real task: proves a worker is consuming and can write to the database."""
    event = audit.record(
        Actor.system("worker", door="worker"),
        "worker.heartbeat",
        AuditEvent(),
        target_type="worker",
        data={"note": note},
    )
    return event.pk


@shared_task(name=outbound.DELIVER_TASK, acks_late=True, ignore_result=True)
def deliver_event(delivery_pk: int):
    """One attempt of an outbound delivery of any kind (``portal.outbound``)."""
    outbound.attempt(delivery_pk)


@shared_task(ignore_result=True)
def retry_due_deliveries():
    return outbound.retry_due()


@shared_task(ignore_result=True)
def purge_idempotency_records():
    return purge_expired()
