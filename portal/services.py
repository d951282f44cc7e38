"""Domain operations for accounts, tokens, event subscriptions and audit.

Every function is ``verb_noun(obj, *, actor, ...)``; refusals raise ``portal.errors``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Required, TypedDict, Unpack

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

from portal import audit, events, urlguard
from portal.actors import Actor
from portal.errors import Forbidden, Invalid
from portal.models import ApiToken, EventSubscription
from portal.urlsecrets import keep_if_redacted, redact_credentials


class SubscriptionFields(TypedDict, total=False):
    """``create_subscription``'s keywords; with the squad (``SUBSCRIPTION_FIELDS``) what
    ``update_subscription`` may change and what the API shows."""

    name: Required[str]
    url: Required[str]
    secret: Required[str]
    event_types: Required[list[str]]
    active: bool


SUBSCRIPTION_FIELDS = ("squad", *SubscriptionFields.__annotations__)


def create_token(
    squad: Any,
    *,
    actor: Actor,
    name: str,
    scopes: list[str],
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """Create a bot token for ``squad``. Members of the squad and org admins may; a token may
    only mint tokens if it has ``admin``. Returns (token, clear value)."""
    if actor.token is not None and "admin" not in actor.token.scopes:
        raise Forbidden("Only tokens with the 'admin' scope may create tokens.")
    if actor.token is None and not actor.can("catalog:write", squad):
        raise Forbidden("Only members of the squad and org admins may create its tokens.")
    for powerful in ("admin", "scim"):  # scim: creates people and squad memberships
        if powerful in scopes and not actor.is_admin:
            raise Forbidden(f"Only org admins may grant the '{powerful}' scope.")
    with transaction.atomic():
        token, raw = ApiToken.generate(
            squad=squad,
            name=name,
            scopes=scopes,
            expires_at=expires_at,
            created_by=actor.user,
        )
        audit.record(actor, "token.create", token, squad=squad, data={"scopes": token.scopes})
    return token, raw


def revoke_token(token: ApiToken, *, actor: Actor) -> bool:
    if actor.token is not None and "admin" not in actor.token.scopes and actor.token.pk != token.pk:
        raise Forbidden("Only tokens with the 'admin' scope may revoke other tokens.")
    if actor.token is None and not actor.can("catalog:write", token.squad):
        raise Forbidden("Only members of the squad and org admins may revoke its tokens.")
    with transaction.atomic():
        updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if updated:
            audit.record(actor, "token.revoke", token, squad=token.squad)
    return bool(updated)


def _require_squad_admin(actor: Actor, squad: Any, what: str) -> None:
    actor.require("catalog:write", squad, what)


def validate_subscription(fields: dict[str, Any]) -> None:
    """Invalid naming each bad field of a subscription (only the fields given are checked);
    ``event_types`` is normalised in place to the sorted registered patterns."""
    errors: dict[str, str] = {}
    if "name" in fields and not (fields["name"] or "").strip():
        errors["name"] = "Give the subscription a name."
    if "url" in fields:
        try:
            URLValidator(schemes=["http", "https"])(fields["url"] or "")
        except ValidationError:
            errors["url"] = "Enter an http:// or https:// URL."
        else:
            try:
                urlguard.validate_url(fields["url"], use="webhook", field="url")
            except Invalid as exc:
                errors["url"] = exc.errors["url"][0]
    if "secret" in fields and not 8 <= len(fields["secret"] or "") <= 200:
        errors["secret"] = "The secret must be 8 to 200 characters long."
    if "event_types" in fields:
        try:
            fields["event_types"] = events.validate_patterns(fields["event_types"])
        except ValueError as exc:
            errors["event_types"] = str(exc)
    if errors:
        raise Invalid(errors=errors)


def create_subscription(
    squad: Any, *, actor: Actor, **fields: Unpack[SubscriptionFields]
) -> EventSubscription:
    _require_squad_admin(actor, squad, "manage event subscriptions")
    given: dict[str, Any] = {"secret": "", "event_types": [], **fields}  # each one is checked
    given["name"] = (given.get("name") or "").strip()
    given["url"] = (given.get("url") or "").strip()
    validate_subscription(given)  # event_types: the sorted distinct patterns
    with transaction.atomic():
        sub = EventSubscription.objects.create(squad=squad, created_by=actor.user, **given)
        audit.record(
            actor,
            "subscription.create",
            sub,
            squad=squad,
            data={"url": redact_credentials(sub.url), "event_types": sub.event_types},
        )
    return sub


def update_subscription(
    sub: EventSubscription, *, actor: Actor, **fields: Any
) -> EventSubscription:
    _require_squad_admin(actor, sub.squad, "manage event subscriptions")
    unknown = set(fields) - set(SUBSCRIPTION_FIELDS)
    if unknown:
        raise Invalid(errors={k: "This field cannot be changed." for k in sorted(unknown)})
    if "url" in fields:  # write-only credentials: the redacted form keeps them
        fields["url"] = keep_if_redacted(fields["url"], sub.url)
    validate_subscription(fields)
    new_squad = fields.get("squad")
    if new_squad is not None and new_squad.pk != sub.squad_id:
        # the subscription would receive that squad's events: needs the right there too
        _require_squad_admin(actor, new_squad, "move a subscription to that squad")
    with transaction.atomic():
        changed: dict[str, Any] = {}
        for key, value in fields.items():
            if getattr(sub, key) != value:
                setattr(sub, key, value)
                changed[key] = _audited(key, value)
        sub.save()
        if changed:
            audit.record(
                actor, "subscription.update", sub, squad=sub.squad, data={"changed": changed}
            )
    return sub


def _audited(key: str, value: Any) -> Any:
    if key == "secret":
        return "***"
    if key == "url":
        return redact_credentials(value)
    return getattr(value, "slug", value)


def delete_subscription(sub: EventSubscription, *, actor: Actor) -> None:
    _require_squad_admin(actor, sub.squad, "manage event subscriptions")
    with transaction.atomic():
        audit.record(actor, "subscription.delete", sub, squad=sub.squad)
        sub.delete()
