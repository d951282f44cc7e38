from portal.models import AuditEvent
from portal.urlsecrets import redact_embedded_credentials


def record(actor, action: str, target, *, squad=None, data=None, target_type=None) -> AuditEvent:
    """Write one audit event: who (actor), what (action), on what (target), from where (door, ip)."""
    if target_type is None:
        target_type = (
            target._meta.label_lower if hasattr(target, "_meta") else type(target).__name__
        )
    target_id = str(getattr(target, "pk", "") or "")
    return AuditEvent.objects.create(
        actor_user=actor.user,
        actor_token=actor.token,
        actor=actor.label,
        door=actor.door,
        action=action,
        target_type=target_type,
        target_id=target_id,
        target_repr=redact_embedded_credentials(str(target))[:300],
        squad=squad,
        ip=actor.ip,
        data=data or {},
    )
