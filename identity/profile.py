"""What a person's profile page shows: who they are, how they sign in, and each squad
membership with where it came from (typed in Backline, or the directory through single sign-on
or SCIM, as the audit log recorded it)."""

from dataclasses import dataclass
from typing import Any

from django.conf import settings

from portal.models import AuditEvent
from squads.models import Membership, Person

DOOR_LABELS = {"sso": "single sign-on", "scim": "SCIM"}


@dataclass
class MembershipRow:
    membership: Membership
    origin: str
    since: Any = None


def _created_events(memberships: list[Membership]) -> dict[str, AuditEvent]:
    events = AuditEvent.objects.filter(
        target_type="squads.membership",
        action="membership.create",
        target_id__in=[str(m.pk) for m in memberships],
    ).order_by("created_at")
    return {e.target_id: e for e in events}  # the latest creation of each membership wins


def membership_rows(person: Person) -> list[MembershipRow]:
    memberships = list(
        Membership.objects.filter(person=person).select_related("squad", "squad__tribe")
    )
    created = _created_events(memberships)
    rows = []
    for m in memberships:
        event = created.get(str(m.pk))
        if m.source == Membership.Source.DIRECTORY:
            door = DOOR_LABELS.get(event.door, event.door) if event else ""
            origin = f"via {door}" if door else "from the directory"
        else:
            origin = "added in Backline"
            if event is not None and event.door not in ("ui", "api"):
                origin += f" ({event.door})"
        rows.append(MembershipRow(m, origin, event.created_at if event else None))
    return rows


def _last_sign_in(person: Person) -> AuditEvent | None:
    return (
        AuditEvent.objects.filter(
            target_type="squads.person", target_id=str(person.pk), action="person.sign_in"
        )
        .order_by("-created_at")
        .first()
    )


def context(request, person: Person | None) -> dict:
    ctx: dict[str, Any] = {"person": person, "provider_name": settings.OIDC_PROVIDER_NAME}
    if person is None:
        return ctx
    user = person.user
    ctx.update(
        rows=membership_rows(person),
        account=user,
        is_me=user is not None and user.pk == request.user.pk,
        is_admin=bool(user and user.is_superuser),
        single_sign_on=bool(person.oidc_subject),
        has_password=bool(user and user.has_usable_password()),
        last_sign_in=_last_sign_in(person),
    )
    ctx["directory_count"] = sum(
        1 for r in ctx["rows"] if r.membership.source == Membership.Source.DIRECTORY
    )
    return ctx
