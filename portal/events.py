"""Outbound events: the registry of event types, and signed webhooks to squads' subscriptions.

Each app registers the event types it emits from its ``AppConfig.ready()``
(``register_event_type(name, description)``); subscriptions may select exactly those (or a
registered family: ``release.*``), and ``emit`` refuses an unregistered type when
``settings.EVENTS_STRICT`` is on (DEBUG and the test suite), so the catalog cannot drift from
the code.

``emit(event_type, squad, data)`` records one delivery per matching subscription; the outbound
service (``portal.outbound``, kind ``event``) sends it after the surrounding transaction
commits, so delivery never blocks (or rolls back) the action that caused it. Headers,
signature and retries: see ``portal.outbound``.
"""

import uuid

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from portal import audit, outbound
from portal.models import EventDelivery, EventSubscription

MAX_ATTEMPTS = outbound.MAX_ATTEMPTS
KIND = "event"

EVENT_TYPES: dict[str, str] = {}


class UnknownEventType(ValueError):
    pass


def register_event_type(name: str, description: str) -> None:
    if "." not in name or name.startswith(".") or name.endswith("."):
        raise ValueError(f"event type {name!r} is not of the form family.name")
    EVENT_TYPES[name] = description


def event_types() -> dict[str, str]:
    return dict(sorted(EVENT_TYPES.items()))


def families() -> list[str]:
    """The registered families (first segment): what ``family.*`` patterns may name."""
    return sorted({name.split(".", 1)[0] for name in EVENT_TYPES})


def validate_patterns(patterns) -> list[str]:
    """Subscription patterns: ``*``, ``family.*`` (or ``family.sub.*``) of registered types,
    or exact registered types. Raises ``ValueError`` naming the first bad one."""
    if not patterns:
        raise ValueError("Choose at least one event type.")
    for p in patterns:
        if not isinstance(p, str):
            raise ValueError(f"Event types are strings, not {p!r}.")
        if p == "*" or p in EVENT_TYPES:
            continue
        if p.endswith(".*") and any(t.startswith(p[:-1]) for t in EVENT_TYPES):
            continue
        raise ValueError(
            f"Unknown event type '{p}'; use '*', one of the families "
            f"{', '.join(f + '.*' for f in families())}, or a registered type."
        )
    return sorted(set(patterns))


def emit(event_type: str, squad, data: dict) -> list[EventDelivery]:
    """Record and enqueue deliveries of one event to the squad's matching subscriptions."""
    if squad is None:
        _check_type(event_type)
        return []
    return emit_many(event_type, [(squad, data)])


def emit_many(event_type: str, items) -> list[EventDelivery]:
    """``emit`` for many squads at once: ``items`` is ``[(squad, data), ...]``; the
    subscriptions of all of them are read in one query, so a bulk operation touching a
    thousand squads costs one query plus one delivery per matching subscription."""
    _check_type(event_type)
    by_squad = {getattr(sq, "pk", sq): (sq, data) for sq, data in items if sq is not None}
    if not by_squad:
        return []
    subs = EventSubscription.objects.filter(squad_id__in=list(by_squad), active=True).order_by(
        "squad_id", "pk"
    )
    deliveries = []
    for sub in subs:
        if not sub.matches(event_type):
            continue
        squad, data = by_squad[sub.squad_id]
        deliveries.append(_deliver(event_type, sub, squad, data))
    return deliveries


def _check_type(event_type: str) -> None:
    if event_type not in EVENT_TYPES and getattr(settings, "EVENTS_STRICT", False):
        raise UnknownEventType(f"event type {event_type!r} is not registered")


def _deliver(event_type: str, sub: EventSubscription, squad, data: dict) -> EventDelivery:
    delivery_id = uuid.uuid4()  # the body's id is the X-Backline-Delivery header
    payload = {
        "id": str(delivery_id),
        "type": event_type,
        "created_at": timezone.now().isoformat(),
        "squad": getattr(squad, "slug", None),
        "data": data,
    }
    return outbound.deliver(
        KIND,
        sub.url,
        payload,
        event_type=event_type,
        ref=f"subscription:{sub.pk}",
        subscription=sub,
        max_attempts=MAX_ATTEMPTS,
        delivery_id=delivery_id,
    )


def attempt(delivery_pk: int) -> EventDelivery | None:
    return outbound.attempt(delivery_pk)


def redeliver(actor, delivery: EventDelivery) -> EventDelivery:
    """A new delivery of the same payload (new delivery id), e.g. after fixing a receiver."""
    if delivery.subscription is None:
        actor.require_admin("redeliver this delivery")
        squad = None
    else:
        squad = delivery.subscription.squad
        actor.require("catalog:write", squad, "redeliver an event")
    with transaction.atomic():
        new_id = uuid.uuid4()
        payload = dict(delivery.payload, id=str(new_id)) if delivery.kind == KIND else None
        new = outbound.redeliver(delivery, payload, new_id)
        audit.record(
            actor, "event.redeliver", new, squad=squad, data={"of": str(delivery.delivery_id)}
        )
    return new


def _subscription_secret(delivery: EventDelivery) -> str:
    return delivery.subscription.secret if delivery.subscription else ""


def register() -> None:
    """The portal's sender and event types (called from ``PortalConfig.ready()``)."""
    outbound.register_sender(KIND, secret=_subscription_secret, user_agent="Backline-Webhooks/1")
