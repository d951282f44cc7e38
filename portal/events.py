"""Outbound events: signed webhooks to squads' subscriptions.

``emit(event_type, squad, data)`` records one delivery per matching subscription and enqueues
it after the surrounding transaction commits, so delivery never blocks (or rolls back) the
action that caused it. Each POST carries:

- ``X-Backline-Event``: the event type, e.g. ``pipeline.succeeded``
- ``X-Backline-Delivery``: a UUID, the same on every retry of that delivery
- ``X-Backline-Timestamp``: unix seconds of this attempt
- ``X-Backline-Signature``: ``sha256=`` + hex HMAC-SHA256 over ``"{timestamp}.{body}"`` with
  the subscription's secret

Receivers should verify the signature with a constant-time compare and refuse timestamps
older than a few minutes. Failed attempts (network error, timeout, non-2xx) are retried with
exponential backoff up to ``MAX_ATTEMPTS``.
"""

import hashlib
import hmac
import json
import time
import uuid
from datetime import timedelta

import requests
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from portal.models import DeliveryAttempt, EventDelivery, EventSubscription

MAX_ATTEMPTS = 6
BACKOFF_BASE = 2.0  # seconds: 2, 4, 8, 16, 32
TIMEOUT = 5.0


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, timestamp, body), signature or "")


def emit(event_type: str, squad, data: dict) -> list[EventDelivery]:
    """Record and enqueue deliveries of one event to the squad's matching subscriptions."""
    if squad is None:
        return []
    squad_id = getattr(squad, "pk", squad)
    subs = [
        s
        for s in EventSubscription.objects.filter(squad_id=squad_id, active=True)
        if s.matches(event_type)
    ]
    deliveries = []
    for sub in subs:
        delivery_id = uuid.uuid4()
        payload = {
            "id": str(delivery_id),
            "type": event_type,
            "created_at": timezone.now().isoformat(),
            "squad": getattr(squad, "slug", None),
            "data": data,
        }
        deliveries.append(
            EventDelivery.objects.create(
                subscription=sub, delivery_id=delivery_id, event_type=event_type, payload=payload
            )
        )
    for d in deliveries:
        _enqueue(d.pk)
    return deliveries


def _enqueue(delivery_pk, countdown=0):
    from portal.tasks import deliver_event

    transaction.on_commit(
        lambda: deliver_event.apply_async(args=[delivery_pk], countdown=countdown)
    )


def attempt(delivery_pk: int) -> EventDelivery | None:
    """One delivery attempt; schedules the next one on failure. Safe to run twice."""
    with transaction.atomic():
        delivery = (
            EventDelivery.objects.select_for_update(skip_locked=True)
            .select_related("subscription")
            .filter(pk=delivery_pk, status__in=("pending", "retrying"))
            .first()
        )
        if delivery is None:
            return None
        sub = delivery.subscription
        body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Backline-Webhooks/1",
            "X-Backline-Event": delivery.event_type,
            "X-Backline-Delivery": str(delivery.delivery_id),
            "X-Backline-Timestamp": ts,
            "X-Backline-Signature": sign(sub.secret, ts, body),
        }
        started = time.monotonic()
        code, error = None, ""
        try:
            resp = requests.post(
                sub.url, data=body, headers=headers, timeout=TIMEOUT, allow_redirects=False
            )
            code = resp.status_code
            if not 200 <= code < 300:
                error = f"HTTP {code}"
        except requests.RequestException as exc:
            error = f"{exc.__class__.__name__}: {exc}"[:500]
        duration = int((time.monotonic() - started) * 1000)
        now = timezone.now()
        DeliveryAttempt.objects.create(
            delivery=delivery, at=now, status_code=code, error=error, duration_ms=duration
        )
        delivery.attempts += 1
        delivery.last_attempt_at = now
        delivery.last_status_code = code
        delivery.last_error = error
        if not error:
            delivery.status = "delivered"
            delivery.delivered_at = now
            delivery.next_attempt_at = None
        elif delivery.attempts >= MAX_ATTEMPTS:
            delivery.status = "failed"
            delivery.next_attempt_at = None
        else:
            delay = BACKOFF_BASE**delivery.attempts
            delivery.status = "retrying"
            delivery.next_attempt_at = now + timedelta(seconds=delay)
            _enqueue(delivery.pk, countdown=delay)
        delivery.save()
    return delivery


def redeliver(actor, delivery: EventDelivery) -> EventDelivery:
    """A new delivery of the same payload (new delivery id), e.g. after fixing a receiver."""
    from portal import audit

    actor.require("catalog:write", delivery.subscription.squad, "redeliver an event")
    with transaction.atomic():
        new_id = uuid.uuid4()
        payload = dict(delivery.payload, id=str(new_id))
        new = EventDelivery.objects.create(
            subscription=delivery.subscription,
            delivery_id=new_id,
            event_type=delivery.event_type,
            payload=payload,
            redelivery_of=delivery,
        )
        audit.record(
            actor,
            "event.redeliver",
            new,
            squad=delivery.subscription.squad,
            data={"of": str(delivery.delivery_id)},
        )
        _enqueue(new.pk)
    return new


def retry_due():
    """Beat safety net: attempt deliveries whose retry time passed (e.g. lost with a worker)."""
    grace = timezone.now() - timedelta(seconds=30)
    due = EventDelivery.objects.filter(
        Q(status__in=("pending", "retrying"), next_attempt_at__isnull=True, created_at__lt=grace)
        | Q(status="retrying", next_attempt_at__lt=grace)
    )
    pks = list(due.values_list("pk", flat=True)[:500])
    for pk in pks:
        attempt(pk)
    return len(pks)
