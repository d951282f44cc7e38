"""Domain operations for accounts, tokens and audit."""

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from portal import audit
from portal.models import ApiToken


def create_token(actor, *, squad, name, scopes, expires_at=None):
    """Create a bot token for ``squad``. Members of the squad and org admins may; a token may
    only mint tokens if it has ``admin``. Returns (token, clear value)."""
    if actor.token is not None and "admin" not in actor.token.scopes:
        raise PermissionDenied("Only tokens with the 'admin' scope may create tokens.")
    if actor.token is None and not actor.can("catalog:write", squad):
        raise PermissionDenied("Only members of the squad and org admins may create its tokens.")
    if "admin" in scopes and not actor.is_admin:
        raise PermissionDenied("Only org admins may grant the 'admin' scope.")
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


def revoke_token(actor, token):
    if actor.token is not None and "admin" not in actor.token.scopes and actor.token.pk != token.pk:
        raise PermissionDenied("Only tokens with the 'admin' scope may revoke other tokens.")
    if actor.token is None and not actor.can("catalog:write", token.squad):
        raise PermissionDenied("Only members of the squad and org admins may revoke its tokens.")
    with transaction.atomic():
        updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if updated:
            audit.record(actor, "token.revoke", token, squad=token.squad)
    return bool(updated)


def _require_squad_admin(actor, squad, what):
    actor.require("catalog:write", squad, what)


def create_subscription(actor, *, squad, name, url, secret, event_types, active=True):
    from portal.models import EventSubscription

    _require_squad_admin(actor, squad, "manage event subscriptions")
    event_types = _valid_patterns(event_types)
    with transaction.atomic():
        sub = EventSubscription.objects.create(
            squad=squad,
            name=name,
            url=url,
            secret=secret,
            event_types=sorted(set(event_types)),
            active=active,
            created_by=actor.user,
        )
        audit.record(
            actor,
            "subscription.create",
            sub,
            squad=squad,
            data={"url": url, "event_types": sub.event_types},
        )
    return sub


def _valid_patterns(patterns) -> list[str]:
    from django.core.exceptions import ValidationError

    from portal import events

    try:
        return events.validate_patterns(patterns)
    except ValueError as exc:
        raise ValidationError({"event_types": [str(exc)]}) from None


def update_subscription(actor, sub, **fields):
    _require_squad_admin(actor, sub.squad, "manage event subscriptions")
    if "event_types" in fields:
        fields["event_types"] = _valid_patterns(fields["event_types"])
    new_squad = fields.get("squad")
    if new_squad is not None and new_squad.pk != sub.squad_id:
        # the subscription would receive that squad's events: needs the right there too
        _require_squad_admin(actor, new_squad, "move a subscription to that squad")
    with transaction.atomic():
        changed = {}
        for key, value in fields.items():
            if getattr(sub, key) != value:
                setattr(sub, key, value)
                changed[key] = "***" if key == "secret" else getattr(value, "slug", value)
        sub.save()
        if changed:
            audit.record(
                actor, "subscription.update", sub, squad=sub.squad, data={"changed": changed}
            )
    return sub


def delete_subscription(actor, sub):
    _require_squad_admin(actor, sub.squad, "manage event subscriptions")
    with transaction.atomic():
        audit.record(actor, "subscription.delete", sub, squad=sub.squad)
        sub.delete()
