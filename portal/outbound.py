"""One outbound delivery service: signed JSON POSTs with retries, a delivery log, redeliver.

Every webhook Backline sends goes through here: events to squads' subscriptions (kind
``event``), alert notifications (``alert``) and the webhook deploy driver (``deploy``). Each
kind registers a ``Sender`` from its app's ``AppConfig.ready()``: where the secret is (looked up
at every attempt, so a rotated secret is used at once and no secret is copied into the log),
and what to do when a delivery lands or fails for good.

Every POST carries:

- ``X-Backline-Event``: what it is, e.g. ``release.promoted``, ``alert.firing``,
  ``deploy.set_weight``
- ``X-Backline-Delivery``: a UUID, the same on every retry of that delivery
- ``X-Backline-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` with the
  secret (omitted when there is none, e.g. a Slack incoming webhook)

``verify_signature(body, header, secret, max_age=300)`` is the one verifier (the README shows
the same check for receivers). A failed attempt (network error, timeout, non-2xx) is retried
with exponential backoff (2, 4, 8, ... s) scheduled as a Celery countdown, up to the
delivery's ``max_attempts``; every attempt is logged (``DeliveryAttempt``). An attempt is
claimed with a conditional UPDATE (``sending``), so two workers never send one attempt twice;
a claim whose worker died is taken back by ``retry_due`` (beat).
"""

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from portal import urlguard
from portal.celery import enqueue
from portal.models import DeliveryAttempt, EventDelivery
from portal.models import DeliveryStatus as S
from portal.urlsecrets import scrub_url

MAX_ATTEMPTS = 6
BACKOFF_BASE = 2.0  # seconds: 2, 4, 8, 16, 32
MAX_BACKOFF = 600.0
TIMEOUT = 5.0
MAX_ANSWER_BYTES = 2**20  # a receiver's answer (JSON of a 2xx) is read up to this
MAX_AGE = 300
STALE_GRACE = 10.0  # a `sending` claim older than its timeout + this lost its worker
OPEN = (S.PENDING, S.RETRYING)
SIGNATURE_HEADER = "X-Backline-Signature"
DELIVER_TASK = "portal.tasks.deliver_event"  # enqueued by name: portal.tasks imports this module


@dataclass(frozen=True)
class Sender:
    kind: str
    secret: Callable[[EventDelivery], str]
    on_delivered: Callable[[EventDelivery], object] | None = None
    on_failed: Callable[[EventDelivery], object] | None = None
    user_agent: str = "Backline-Webhooks/1"


SENDERS: dict[str, Sender] = {}


def register_sender(kind: str, *, secret, on_delivered=None, on_failed=None, user_agent=None):
    """Called from an app's ``AppConfig.ready()``; registering a kind twice replaces it."""
    SENDERS[kind] = Sender(
        kind, secret, on_delivered, on_failed, user_agent or f"Backline-{kind.title()}/1"
    )


def sender_for(kind: str) -> Sender:
    try:
        return SENDERS[kind]
    except KeyError:
        raise LookupError(f"no outbound sender registered for kind {kind!r}") from None


# --- the signature ---------------------------------------------------------------------------
def body_of(payload) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The ``X-Backline-Signature`` value for ``body``."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={t},v1={_mac(secret, t, body)}"


def verify_signature(
    body: bytes,
    header: str,
    secret: str,
    max_age: float | None = MAX_AGE,
    *,
    now: float | None = None,
):
    """True when ``header`` signs ``body`` with ``secret`` and its timestamp is at most
    ``max_age`` seconds away from ``now`` (default: the clock; ``max_age`` None: any age), so a
    captured delivery replayed later is refused."""
    fields: dict[str, list[str]] = {}
    for part in (header or "").split(","):
        name, _, value = part.strip().partition("=")
        fields.setdefault(name, []).append(value)
    ts = (fields.get("t") or [""])[0]
    if not ts.isdigit() or not secret:
        return False
    if max_age is not None and abs((time.time() if now is None else now) - int(ts)) > max_age:
        return False
    expected = _mac(secret, int(ts), body)
    return any(hmac.compare_digest(expected, v) for v in fields.get("v1", []))


def headers_for(delivery: EventDelivery, body: bytes, secret: str, user_agent: str) -> dict:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": user_agent,
        "X-Backline-Event": delivery.event_type,
        "X-Backline-Delivery": str(delivery.delivery_id),
    }
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, body)
    return headers


def post_signed(url, payload, secret, *, event_type, timeout=TIMEOUT) -> urlguard.Response:
    """One signed POST through the URL guard, no log and no retry (for calls whose answer the
    caller needs now, such as a deployer's status). Raises ``urlguard.FetchError``."""
    body = body_of(payload)
    probe = EventDelivery(event_type=event_type, delivery_id=uuid.uuid4())
    headers = headers_for(probe, body, secret, "Backline-Webhooks/1")
    return _send(url, body, headers, timeout)


def _send(url, body, headers, timeout) -> urlguard.Response:
    return urlguard.request(
        "POST",
        url,
        use="webhook",
        body=body,
        headers=headers,
        timeout=timeout,
        max_bytes=MAX_ANSWER_BYTES,
    )


# --- deliveries ------------------------------------------------------------------------------
def deliver(
    kind: str,
    url: str,
    payload: dict,
    *,
    event_type: str,
    ref: str = "",
    key: str | None = None,
    subscription=None,
    max_attempts: int = MAX_ATTEMPTS,
    timeout: float = TIMEOUT,
    send_now: bool = False,
    delivery_id: uuid.UUID | None = None,
) -> EventDelivery:
    """Record a delivery and send it: after the surrounding transaction commits (by a worker),
    or with ``send_now`` right here (callers outside any row lock, e.g. a Celery task).

    ``key`` makes it idempotent: a second call with the same key returns the first delivery
    and sends nothing more (a settled one reports its outcome to the sender again)."""
    sender_for(kind)
    if key is not None:
        existing = EventDelivery.objects.filter(key=key).first()
        if existing is not None:
            return _again(existing, send_now)
    fields = dict(
        kind=kind,
        url=url,
        payload=payload,
        event_type=event_type,
        ref=ref,
        key=key,
        subscription=subscription,
        max_attempts=max(1, int(max_attempts)),
        timeout_seconds=float(timeout),
        delivery_id=delivery_id or uuid.uuid4(),
    )
    try:
        with transaction.atomic():
            delivery = EventDelivery.objects.create(**fields)
    except IntegrityError:  # the same key, created concurrently
        return _again(EventDelivery.objects.get(key=key), send_now)
    if send_now:
        return attempt(delivery.pk) or delivery
    _enqueue(delivery.pk)
    return delivery


def _again(delivery: EventDelivery, send_now: bool) -> EventDelivery:
    if send_now:
        _reclaim_stale(EventDelivery.objects.filter(pk=delivery.pk))
        delivery.refresh_from_db()
        if delivery.status in OPEN:
            return attempt(delivery.pk) or delivery
        _settled(delivery)
    return delivery


def _enqueue(delivery_pk, countdown=0.0):
    def send():
        # by name: portal.tasks imports this module
        enqueue(DELIVER_TASK, delivery_pk, countdown=countdown)

    transaction.on_commit(send)


def _post(delivery, body, sender) -> tuple[int | None, str, dict | None]:
    """POST once: (status code, error or "", JSON answer of a 2xx). The error never quotes the
    receiver's answer: it is shown to every viewer of the delivery log and the alerts page."""
    headers = headers_for(delivery, body, sender.secret(delivery) or "", sender.user_agent)
    try:
        resp = _send(delivery.url, body, headers, delivery.timeout_seconds)
    except urlguard.Timeout:
        return None, f"timed out after {delivery.timeout_seconds:g} s", None
    except urlguard.FetchError as exc:
        return None, scrub_url(str(exc), delivery.url)[:500], None
    if not resp.ok:
        return resp.status_code, f"HTTP {resp.status_code}", None
    try:
        answer = resp.json() if resp.content else None
    except ValueError:
        answer = None
    return resp.status_code, "", answer if isinstance(answer, dict) else None


def attempt(delivery_pk: int) -> EventDelivery | None:
    """One attempt of an open delivery (None when it is not open or another worker has it);
    schedules the next one on failure. No lock is held while the request is in flight."""
    claimed = EventDelivery.objects.filter(pk=delivery_pk, status__in=OPEN).update(
        status=S.SENDING, last_attempt_at=timezone.now()
    )
    if not claimed:
        return None
    delivery = EventDelivery.objects.select_related("subscription").get(pk=delivery_pk)
    started = time.monotonic()
    try:
        code, error, answer = _post(delivery, body_of(delivery.payload), sender_for(delivery.kind))
    except Exception:
        EventDelivery.objects.filter(pk=delivery_pk, status=S.SENDING).update(status=S.RETRYING)
        raise
    _record(delivery, code, error, answer, int((time.monotonic() - started) * 1000))
    _settled(delivery)
    return delivery


def _record(delivery, code, error, answer, duration_ms):
    now = timezone.now()
    with transaction.atomic():
        DeliveryAttempt.objects.create(
            delivery=delivery, at=now, status_code=code, error=error, duration_ms=duration_ms
        )
        delivery.attempts += 1
        delivery.last_attempt_at = now
        delivery.last_status_code = code
        delivery.last_error = error
        delivery.next_attempt_at = None
        if not error:
            delivery.status, delivery.delivered_at, delivery.response = S.DELIVERED, now, answer
        elif delivery.attempts >= delivery.max_attempts:
            delivery.status = S.FAILED
        else:
            delay = min(BACKOFF_BASE**delivery.attempts, MAX_BACKOFF)
            delivery.status = S.RETRYING
            delivery.next_attempt_at = now + timedelta(seconds=delay)
            _enqueue(delivery.pk, countdown=delay)
        delivery.save(
            update_fields=[
                "attempts",
                "last_attempt_at",
                "last_status_code",
                "last_error",
                "next_attempt_at",
                "status",
                "delivered_at",
                "response",
            ]
        )


def _settled(delivery):
    """Tell the kind's sender about a delivery that landed or failed for good."""
    sender = sender_for(delivery.kind)
    if delivery.status == S.DELIVERED and sender.on_delivered:
        sender.on_delivered(delivery)
    elif delivery.status == S.FAILED and sender.on_failed:
        sender.on_failed(delivery)


def redeliver(
    delivery: EventDelivery, payload: dict | None = None, delivery_id: uuid.UUID | None = None
) -> EventDelivery:
    """A new delivery of the same payload (or ``payload``) to the same URL, with a new delivery
    id, sent after commit; e.g. after fixing a receiver."""
    new = EventDelivery.objects.create(
        kind=delivery.kind,
        subscription=delivery.subscription,
        ref=delivery.ref,
        url=delivery.url,
        delivery_id=delivery_id or uuid.uuid4(),
        event_type=delivery.event_type,
        payload=dict(delivery.payload) if payload is None else payload,
        max_attempts=delivery.max_attempts,
        timeout_seconds=delivery.timeout_seconds,
        redelivery_of=delivery,
    )
    _enqueue(new.pk)
    return new


def cancel_open(ref: str, *, kind: str, keep_key: str | None = None) -> int:
    """Cancel the not-yet-sent deliveries of ``kind`` about ``ref`` (a newer one supersedes
    them); one in flight is left to finish."""
    qs = EventDelivery.objects.filter(kind=kind, ref=ref, status__in=OPEN)
    if keep_key is not None:
        qs = qs.exclude(key=keep_key)
    return qs.update(status=S.CANCELED, next_attempt_at=None)


def in_flight(ref: str, *, kind: str, exclude_key: str | None = None) -> bool:
    """Whether a delivery of ``kind`` about ``ref`` (other than ``exclude_key``) is on the wire."""
    qs = EventDelivery.objects.filter(kind=kind, ref=ref, status=S.SENDING)
    if exclude_key is not None:
        qs = qs.exclude(key=exclude_key)
    return qs.exists()


def _reclaim_stale(qs) -> int:
    """Claims whose worker died (older than their timeout + a grace) become retryable."""
    now = timezone.now()
    n = 0
    for pk, timeout in qs.filter(status=S.SENDING).values_list("pk", "timeout_seconds"):
        cutoff = now - timedelta(seconds=timeout + STALE_GRACE)
        n += EventDelivery.objects.filter(
            pk=pk, status=S.SENDING, last_attempt_at__lt=cutoff
        ).update(status=S.RETRYING)
    return n


def retry_due() -> int:
    """Beat safety net: attempt deliveries whose retry time passed (e.g. lost with a worker)."""
    _reclaim_stale(EventDelivery.objects.all())
    grace = timezone.now() - timedelta(seconds=30)
    due = EventDelivery.objects.filter(
        Q(status__in=OPEN, next_attempt_at__isnull=True, created_at__lt=grace)
        | Q(status=S.RETRYING, next_attempt_at__isnull=True, last_attempt_at__isnull=False)
        | Q(status=S.RETRYING, next_attempt_at__lt=grace)
    )
    pks = list(due.values_list("pk", flat=True)[:500])
    for pk in pks:
        attempt(pk)
    return len(pks)
