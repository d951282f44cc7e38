"""Monitoring domain operations: alert rules and channels (CRUD with audit), rule evaluation
(pending → firing → resolved), and notification fan-out (one Delivery per channel, sent by the
outbound delivery service after commit, plus the ``alert.*`` outbound event)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Required, TypedDict, Unpack

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from metrics.backends import BackendError, get_backend
from monitoring import notify
from monitoring.models import (
    SIGNALS,
    Alert,
    AlertEvent,
    AlertRule,
    Delivery,
    NotificationChannel,
)
from portal import audit, events, limits, urlguard
from portal.actors import Actor
from portal.errors import Invalid

log = logging.getLogger(__name__)


class RuleFields(TypedDict, total=False):
    """What a person sets on an alert rule: ``create_alert_rule``'s keywords, and through
    ``RULE_FIELDS`` what ``update_alert_rule``, the form and the API accept. A field not given
    takes the model's default."""

    name: Required[str]
    signal: str  # a golden signal, or
    query: str  # a raw query
    track: str
    comparison: str
    threshold: Required[float]
    window_seconds: int
    for_seconds: int
    severity: str
    enabled: bool


class ChannelFields(TypedDict, total=False):
    """``create_channel``'s keywords (``CHANNEL_FIELDS`` with the squad: what the form takes)."""

    name: Required[str]
    kind: Required[str]
    url: Required[str]
    secret: str
    min_severity: str
    enabled: bool


RULE_FIELDS = tuple(RuleFields.__annotations__)
CHANNEL_FIELDS = ("squad", *ChannelFields.__annotations__)
SEVERITY_ORDER = {"info": 0, "warning": 1, "critical": 2}


# --- rules and channels ---------------------------------------------------------------------
def validate_alert_rule(signal: str, query: str, *, check_query: bool = True) -> None:
    """A rule watches a golden signal or a raw query (one of them), and the query must be one
    the metrics backend can evaluate."""
    query = (query or "").strip()
    limits.check_value("monitoring.AlertRule", "query", query)  # before any parsing
    if not signal and not query:
        raise Invalid(
            "Choose a signal or write a query.",
            errors={"signal": "Give a signal (one of " + ", ".join(SIGNALS) + ") or a query."},
        )
    if signal and query:
        raise Invalid(
            "Choose a signal or write a query, not both.",
            errors={"query": "Give either a signal or a query, not both."},
        )
    problem = query_error(query) if query and check_query else None
    if problem:
        raise Invalid(errors={"query": problem})


def create_alert_rule(service: Any, *, actor: Actor, **fields: Unpack[RuleFields]) -> AlertRule:
    actor.require("alerts:write", service.owner_id, "creating alert rules")
    fields["query"] = (fields.get("query") or "").strip()
    validate_alert_rule(fields.get("signal", ""), fields["query"])
    with transaction.atomic():
        rule = AlertRule.objects.create(service=service, **fields)
        audit.record(
            actor, "alert_rule.create", rule, squad=service.owner, data={"expr": rule.expression}
        )
    return rule


def update_alert_rule(rule: AlertRule, *, actor: Actor, **fields: Any) -> AlertRule:
    """Change the given ``fields`` (of ``RULE_FIELDS``) of a rule."""
    actor.require("alerts:write", rule.service.owner_id, "changing alert rules")
    unknown = set(fields) - set(RULE_FIELDS)
    if unknown:
        raise Invalid(errors={k: "This field cannot be changed." for k in sorted(unknown)})
    validate_alert_rule(
        fields.get("signal", rule.signal),
        fields.get("query", rule.query),
        check_query="query" in fields,
    )
    with transaction.atomic():
        rule = (
            AlertRule.objects.select_for_update(of=("self",), no_key=True)
            .select_related("service", "service__owner")
            .get(pk=rule.pk)
        )
        for k, v in fields.items():
            setattr(rule, k, v)
        rule.save()
        audit.record(
            actor,
            "alert_rule.update",
            rule,
            squad=rule.service.owner,
            data={"expr": rule.expression, "enabled": rule.enabled},
        )
    return rule


def delete_alert_rule(rule: AlertRule, *, actor: Actor) -> None:
    actor.require("alerts:write", rule.service.owner_id, "deleting alert rules")
    with transaction.atomic():
        audit.record(
            actor, "alert_rule.delete", rule, squad=rule.service.owner, data={"name": rule.name}
        )
        rule.delete()


def create_channel(
    squad: Any, *, actor: Actor, **fields: Unpack[ChannelFields]
) -> NotificationChannel:
    actor.require("alerts:write", squad.pk, "adding notification channels")
    urlguard.validate_url(fields["url"], use="webhook", field="url")
    with transaction.atomic():
        channel = NotificationChannel.objects.create(squad=squad, **fields)
        audit.record(
            actor, "alert_channel.create", channel, squad=squad, data={"kind": channel.kind}
        )
    return channel


def delete_channel(channel: NotificationChannel, *, actor: Actor) -> None:
    actor.require("alerts:write", channel.squad_id, "deleting notification channels")
    with transaction.atomic():
        audit.record(actor, "alert_channel.delete", channel, squad=channel.squad)
        channel.delete()


def query_error(query: str, backend: Any = None) -> str | None:
    """Why ``query`` cannot be evaluated by the configured backend (None when it can, or when
    the backend is unreachable and cannot tell)."""
    backend = backend or get_backend()
    try:
        backend.instant(query)
    except BackendError as exc:
        message = str(exc)
        if "unreachable" in message or "did not answer" in message:
            return None
        return message
    return None


# --- evaluation -----------------------------------------------------------------------------
def rule_value(rule: AlertRule, backend=None) -> float | None:
    """The rule's current value (None: no data). Raises BackendError."""
    backend = backend or get_backend()
    if rule.query:
        results = backend.instant(rule.query)
        values = [r.points[-1][1] for r in results if r.points and r.points[-1][1] is not None]
        return max(values) if values else None
    return backend.current_signal(rule.service, rule.track, rule.signal, rule.window_seconds)


def _summary(rule, value):
    return f"{rule.service.name}: {rule.name} ({rule.expression}; now {rule.format(value)})"[:500]


def evaluate_rule(rule_id: int, backend=None, now=None) -> str:
    """Evaluate one rule and move its alert along pending → firing → resolved.

    No data never fires a rule; a firing alert whose condition no longer holds (or whose data
    disappeared) resolves. Returns what happened (for logs and tests).
    """
    now = now or timezone.now()
    rule = AlertRule.objects.select_related("service", "service__owner").get(pk=rule_id)
    error = ""
    try:
        value = rule_value(rule, backend)
    except BackendError as exc:
        value, error = None, str(exc)
    return apply_value(rule_id, value, error, now)


def apply_value(rule_id: int, value: float | None, error: str, now, *, claimed=False) -> str:
    """Record a rule's evaluated ``value`` (or the backend ``error``) and move its alert along,
    under the rule's row lock (``claimed``: the claim set ``last_evaluated_at``)."""
    with transaction.atomic():
        rule = (
            AlertRule.objects.select_for_update(of=("self",), no_key=True)
            .select_related("service", "service__owner")
            .get(pk=rule_id)
        )
        stamp = {} if claimed else {"last_evaluated_at": now}
        AlertRule.objects.filter(pk=rule.pk).update(
            last_value=value, last_error=error[:2000], **stamp
        )
        if error:
            return "error"  # a backend outage neither fires nor resolves anything
        active = (
            Alert.objects.select_for_update(no_key=True)
            .filter(rule=rule, state__in=[Alert.State.PENDING, Alert.State.FIRING])
            .first()
        )
        if rule.enabled and rule.matches(value):
            return _condition_met(rule, active, value, now)
        if active is not None:
            return _resolve(active, value, now)
    return "unchanged"


def _condition_met(rule, active, value, now) -> str:
    """Open (pending) or update the rule's alert; fire it once pending for ``for_seconds``."""
    outcome = "unchanged"
    if active is None:
        active = Alert(
            rule=rule,
            service=rule.service,
            severity=rule.severity,
            started_at=now,
            value=value,
            last_value=value,
            summary=_summary(rule, value),
        )
        _save_and_log(active, "pending", value, now)
        outcome = "pending"
    else:
        active.last_value = value
        active.save(update_fields=["last_value"])
    if active.state == Alert.State.PENDING and now - active.started_at >= timedelta(
        seconds=rule.for_seconds
    ):
        active.value = value
        active.fired_at = now
        active.summary = _summary(rule, value)
        _save_and_log(active, "firing", value, now)
        _notify(active, "firing")
        outcome = "firing"
    return outcome


def _resolve(active, value, now) -> str:
    was_firing = active.state == Alert.State.FIRING
    active.resolved_at = now
    active.last_value = value
    _save_and_log(active, "resolved", value, now)
    if was_firing:
        _notify(active, "resolved")
    return "resolved"


def _save_and_log(alert, to_state, value, now):
    from_state = alert.state if alert.pk else ""
    alert.state = to_state
    alert.save()
    AlertEvent.objects.create(
        alert=alert, at=now, from_state=from_state, to_state=to_state, value=value
    )


def evaluate_all(backend=None) -> dict:
    """Evaluate every enabled rule here (tests and the embedded mode; beat evaluates the due
    ones in batches, ``monitoring.evaluation``)."""
    backend = backend or get_backend()
    counts: dict[str, int] = {}
    for rule_id in AlertRule.objects.filter(enabled=True).values_list("pk", flat=True):
        try:
            outcome = evaluate_rule(rule_id, backend)
        except AlertRule.DoesNotExist:
            continue
        counts[outcome] = counts.get(outcome, 0) + 1
    resolve_disabled()
    return counts


def resolve_disabled() -> int:
    """Alerts of rules that were disabled resolve (one query when there are none)."""
    n = 0
    for alert_id in Alert.objects.filter(
        rule__enabled=False, state__in=[Alert.State.PENDING, Alert.State.FIRING]
    ).values_list("pk", flat=True):
        with transaction.atomic():
            alert = Alert.objects.select_for_update(no_key=True).get(pk=alert_id)
            was_firing = alert.state == Alert.State.FIRING
            alert.resolved_at = timezone.now()
            _save_and_log(alert, "resolved", None, alert.resolved_at)
            if was_firing:
                _notify(alert, "resolved")
        n += 1
    return n


# --- notifications --------------------------------------------------------------------------
def payload_for(alert: Alert, event: str) -> dict:
    rule = alert.rule
    return {
        "event": f"alert.{event}",
        "alert": {
            "id": alert.pk,
            "state": alert.state,
            "severity": alert.severity,
            "summary": alert.summary,
            "started_at": alert.started_at.isoformat(),
            "fired_at": alert.fired_at.isoformat() if alert.fired_at else None,
            "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
            "value": alert.value,
            "last_value": alert.last_value,
            "url": settings.BASE_URL.rstrip("/")
            + reverse("monitoring:alert_detail", args=[alert.pk]),
        },
        "rule": {"id": rule.pk, "name": rule.name, "expression": rule.expression},
        "service": {"slug": alert.service.slug, "name": alert.service.name},
        "squad": alert.service.owner.slug if alert.service.owner else None,
    }


ALERT_EVENTS = {"firing": "alert.firing", "resolved": "alert.resolved"}


def _notify(alert: Alert, event: str):
    """One Delivery per enabled channel of the owning squad (sent after commit by the outbound
    service), and the outbound event to the squad's subscriptions."""
    squad_id = alert.service.owner_id
    if not squad_id:
        return []
    level = SEVERITY_ORDER.get(alert.severity, 0)
    payload = payload_for(alert, event)
    deliveries = [
        Delivery.objects.create(
            alert=alert,
            channel=ch,
            event=event,
            payload=payload,
            outbound=notify.send(ch, payload, event),
        )
        for ch in NotificationChannel.objects.filter(squad_id=squad_id, enabled=True)
        if SEVERITY_ORDER.get(ch.min_severity, 0) <= level
    ]
    events.emit(ALERT_EVENTS[event], alert.service.owner, payload)
    return deliveries
