"""Applying a release's wanted driver call: after commit, outside any row lock.

``sync(release_id)`` (task ``advance_release``, after an action or a beat tick) hands the
release's ``driver_call`` to its deploy driver: ``apply`` for a driver that answers at once
(``local``), ``request`` for one that confirms later (``webhook``: an outbound delivery keyed
by the call id, retried by the outbound service, confirmed by its sender). ``confirm`` records
the answer in a short transaction under the row lock and drives on; a superseded call
(another one was wanted meanwhile) changes nothing.
"""

import contextvars

from django.db import transaction
from django.utils import timezone

from portal import outbound
from releases import observe
from releases.controller import (
    DRIVEN_FIELDS,
    MAX_STEPS_PER_TICK,
    _driver_failed,
    _driver_ok,
    drive,
    kick,
    note,
)
from releases.drivers import DEPLOY_KIND, DriverError, get_driver
from releases.models import Release

_SYNCING: contextvars.ContextVar[int | None] = contextvars.ContextVar("syncing", default=None)


def _describe(call) -> str:
    if call.get("action") == "set_weight":
        return f"set weight {call.get('weight')} %"
    return str(call.get("action"))


def _applied(r, call):
    """The driver confirmed ``call``: the row says so."""
    if call["action"] == "set_weight":
        r.weight = call["weight"]
        note(r, "weight", f"canary weight {r.weight} %")
        return
    r.weight = r.desired_weight = 0 if call["action"] == "rollback" else 100
    if r.driver_action == call["action"]:
        r.driver_action = ""
    if call["action"] == "rollback":
        note(r, "weight", "traffic back to stable (rollback)")
    else:
        note(r, "weight", "new version promoted to stable")


def confirm(release_id, call_id, *, ok, error="") -> bool:
    """Record the driver's answer to call ``call_id`` and drive on (a superseded call changes
    nothing). True when the release now wants another call; it is handed over unless this
    runs inside ``sync`` of that release (which goes on by itself)."""
    with transaction.atomic():
        r = (
            Release.objects.select_for_update(of=("self",), no_key=True)
            .select_related("service", "service__owner", "environment")
            .filter(pk=release_id)
            .first()
        )
        if r is None:
            return False
        call = r.driver_call or {}
        if call and call.get("id") == call_id:
            if ok:
                _applied(r, call)
                _driver_ok(r)
                r.driver_call = {}
                drive(r)
            else:
                _driver_failed(r, _describe(call), error, timezone.now())
                r.driver_call = {}  # beat wants it again at next_tick_at
                r.save(update_fields=DRIVEN_FIELDS)
        pending = bool(r.driver_call)
    if pending and _SYNCING.get() != r.pk:
        kick(r.pk)
    return pending


def sync(release_id, max_calls=MAX_STEPS_PER_TICK) -> int:
    """Hand the wanted driver calls to the driver, one after the other, outside any row lock;
    returns how many were handed over."""
    token = _SYNCING.set(release_id)
    handed, last = 0, None
    try:
        for _ in range(max_calls):
            r = Release.objects.select_related("service", "environment").filter(pk=release_id)
            r = r.first()
            call = (r.driver_call or {}) if r else {}
            if not call or call["id"] == last:
                break  # nothing wanted, or the last one is still on its way
            last, handed = call["id"], handed + 1
            try:
                driver = get_driver(r.environment)
                if driver.confirms_later:
                    driver.request(r, call)  # its sender confirms (perhaps right away)
                    continue
                driver.apply(r, call)
            except DriverError as exc:
                confirm(release_id, call["id"], ok=False, error=str(exc))
                break
            confirm(release_id, call["id"], ok=True)
    finally:
        _SYNCING.reset(token)
    if handed:
        observe.observe(release_id)  # what the deployer now reports (drivers that observe)
    return handed


# --- the outbound sender of webhook driver calls ------------------------------------------------
def _release_of(delivery):
    ref, _, rest = delivery.key.partition(":") if delivery.key else ("", "", "")
    pk, _, call_id = rest.partition(":")
    release = Release.objects.select_related("environment").filter(pk=pk or None).first()
    return release, call_id


def _deploy_secret(delivery) -> str:
    release, _ = _release_of(delivery)
    return str((release.environment.driver_config or {}).get("secret") or "") if release else ""


def _deploy_delivered(delivery):
    release, call_id = _release_of(delivery)
    if release is not None:
        confirm(release.pk, call_id, ok=True)


def _deploy_failed(delivery):
    release, call_id = _release_of(delivery)
    if release is not None:
        error = f"deployer webhook {delivery.event_type[7:]} failed after "
        error += f"{delivery.attempts} attempt(s): {delivery.last_error}"
        confirm(release.pk, call_id, ok=False, error=error)


def register():
    outbound.register_sender(
        DEPLOY_KIND,
        secret=_deploy_secret,
        on_delivered=_deploy_delivered,
        on_failed=_deploy_failed,
        user_agent="Backline-Deploy/1",
    )
