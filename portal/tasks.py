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
