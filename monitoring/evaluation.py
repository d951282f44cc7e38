"""Alert rules at scale: beat evaluates the rules that are due, in claimed batches.

``dispatch()`` (beat, every few seconds) claims the enabled rules whose last evaluation is an
interval old (``portal.claims``: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL) in batches and hands
each batch to a worker (``evaluate_batch``). A batch reads its metrics at once: golden-signal
rules of every service in the batch from one series query and one sample read per window
(``MetricsBackend.current_signals``), query rules once per distinct query. Rules whose alert
does not change state are recorded with two bulk updates; only a rule that opens, fires or
resolves an alert takes its own transaction (``services.apply_value``, under the row lock).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from metrics.backends import BackendError, get_backend
from monitoring import services
from monitoring.models import Alert, AlertRule
from portal import claims
from portal.celery import enqueue

log = logging.getLogger(__name__)

BATCH_TASK = "monitoring.tasks.evaluate_alert_batch"
CLAIM_BATCH = 500
MAX_CLAIMED_PER_TICK = 50_000
ACTIVE = [Alert.State.PENDING, Alert.State.FIRING]
LATENCY = {"p50", "p95", "p99"}
# what a batch reads of a rule's service (a backend's metric names and queries): not its
# catalog JSON
SERVICE_FIELDS = ("service__id", "service__slug", "service__annotations")
RULE_FIELDS = tuple(f.name for f in AlertRule._meta.concrete_fields)


def interval() -> float:
    return float(settings.MONITORING_EVALUATION_INTERVAL)


def due(now):
    return AlertRule.objects.filter(enabled=True).filter(
        Q(last_evaluated_at__isnull=True)
        | Q(last_evaluated_at__lte=now - timedelta(seconds=interval()))
    )


def claim_due(limit=CLAIM_BATCH, now=None) -> list[int]:
    """Claim up to ``limit`` due rules: ``last_evaluated_at`` moves one interval on (keeping
    each rule's phase; a rule that fell behind is due again within half an interval)."""
    now = now or timezone.now()
    step = timedelta(seconds=interval())
    return claims.claim(due(now), "last_evaluated_at", now, limit, step=step, floor=now - step / 2)


def dispatch() -> int:
    """Beat: claim the due rules in batches, one worker task per batch. Nothing due: two
    queries (the claim, and the alerts of disabled rules). What falls due while it claims
    waits for the next tick (``claims.fan_out``)."""
    now = timezone.now()
    n = claims.fan_out(
        lambda: claim_due(CLAIM_BATCH, now),
        lambda ids: enqueue(BATCH_TASK, ids),
        CLAIM_BATCH,
        MAX_CLAIMED_PER_TICK,
    )
    services.resolve_disabled()
    return n


def _values(rules, backend) -> dict:
    """{rule id: (value, error)} for ``rules``, their metrics read in groups."""
    out: dict = {}
    groups: dict = {}
    for rule in rules:
        if rule.query:
            groups.setdefault(("query", rule.query), []).append(rule)
        else:  # one read per window, track and kind of series (requests or buckets)
            key = (rule.window_seconds, rule.track, rule.signal in LATENCY)
            groups.setdefault(("signal", key), []).append(rule)
    for (kind, key), members in groups.items():
        try:
            if kind == "query":
                results = backend.instant(key)
                vals = [
                    r.points[-1][1] for r in results if r.points and r.points[-1][1] is not None
                ]
                got = {r.pk: max(vals) if vals else None for r in members}
            else:
                svcs = {r.service_id: r.service for r in members}
                window, track, _ = key
                wanted = sorted({r.signal for r in members})
                data = backend.current_signals(list(svcs.values()), [track], window, wanted)
                got = {r.pk: data[r.service_id][r.track].get(r.signal) for r in members}
            out.update({pk: (v, "") for pk, v in got.items()})
        except BackendError as exc:
            out.update({r.pk: (None, str(exc)) for r in members})
    return out


def _changes(rule, active, value, now) -> bool:
    """Whether ``value`` opens, fires or resolves the rule's alert (else only recorded)."""
    if rule.matches(value):
        return active is None or (
            active.state == Alert.State.PENDING
            and now - active.started_at >= timedelta(seconds=rule.for_seconds)
        )
    return active is not None


def _record(rules, values) -> None:
    """The rules' last values in one UPDATE (the claim set ``last_evaluated_at``)."""
    for r in rules:
        r.last_value, r.last_error = values[r.pk][0], values[r.pk][1][:2000]
    claims.update_rows(rules, ["last_value", "last_error"])


def evaluate_batch(ids, backend=None, now=None) -> dict:
    """Evaluate the claimed rules ``ids``; {outcome: count}."""
    backend = backend or get_backend()
    now = now or timezone.now()
    rules = list(
        AlertRule.objects.filter(pk__in=claims.ids_in(ids), enabled=True)
        .select_related("service")
        .only(*RULE_FIELDS, *SERVICE_FIELDS)
    )
    values = _values(rules, backend)
    active = {
        a.rule_id: a for a in Alert.objects.filter(rule_id__in=claims.ids_in(ids), state__in=ACTIVE)
    }
    counts: dict[str, int] = {}
    quiet, touched = [], []
    for rule in rules:
        value, error = values[rule.pk]
        alert = active.get(rule.pk)
        if error or not _changes(rule, alert, value, now):
            quiet.append(rule)
            outcome = "error" if error else "unchanged"
            if alert is not None and not error:
                alert.last_value = value
                touched.append(alert)
        else:
            try:
                outcome = services.apply_value(rule.pk, value, "", now, claimed=True)
            except AlertRule.DoesNotExist:
                continue
        counts[outcome] = counts.get(outcome, 0) + 1
    _record(quiet, values)
    claims.update_rows(touched, ["last_value"])
    return counts
