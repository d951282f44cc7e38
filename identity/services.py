"""Identity's domain operations: the person an OpenID provider vouches for.

``sign_in_person(claims, *, actor)`` finds the Backline person for verified ID-token claims
(by ``sub``; on the first sign-in by a verified email), creates them just in time (a Django user
and a catalog person), makes them an org admin or not from the admin groups, and makes their
directory memberships follow the group claim.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils.text import slugify

from identity.directory import MembershipChange, squad_slugs_for_groups, sync_directory_memberships
from portal import audit
from portal.actors import Actor
from portal.errors import Forbidden, Invalid
from squads.models import Person


@dataclasses.dataclass
class SignIn:
    user: Any
    person: Person
    created: bool
    linked: bool
    admin: bool
    memberships: MembershipChange


def groups_from_claims(claims: Mapping[str, Any]) -> list[str]:
    raw = claims.get(settings.OIDC_GROUPS_CLAIM) or []
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list | tuple):
        return []
    return [str(g) for g in raw if str(g).strip()]


def _verified_email(claims: Mapping[str, Any]) -> str:
    verified = claims.get("email_verified")
    if verified is True or str(verified).lower() == "true":
        return str(claims.get("email") or "").strip()
    return ""


def _unique(model, field: str, base: str, limit: int) -> str:
    base = base[:limit] or "person"
    candidate, n = base, 1
    while model.objects.filter(**{field: candidate}).exists():
        n += 1
        suffix = f"-{n}"
        candidate = base[: limit - len(suffix)] + suffix
    return candidate


def _person_by_email(email: str) -> Person | None:
    """The not-yet-linked person whose (user's) email is this verified email."""
    if not email:
        return None
    unlinked = Person.objects.filter(oidc_subject__isnull=True).select_related("user")
    person = (
        unlinked.filter(user__email__iexact=email).order_by("pk").first()
        or unlinked.filter(email__iexact=email).order_by("-user_id", "pk").first()
    )
    if person is not None:
        return person
    user = get_user_model().objects.filter(email__iexact=email, person__isnull=True).first()
    if user is not None:
        return Person.objects.create(
            slug=_unique(Person, "slug", slugify(user.get_username()), 150),
            name=user.get_full_name() or user.get_username(),
            email=email,
            user=user,
        )
    return None


def _new_person(claims: Mapping[str, Any]) -> Person:
    email = str(claims.get("email") or "")
    handle = str(claims.get("preferred_username") or email.split("@")[0] or claims["sub"])
    return Person.objects.create(
        slug=_unique(Person, "slug", slugify(handle) or "person", 150),
        name=str(claims.get("name") or handle)[:200],
        email=email if _verified_email(claims) else "",
    )


def _new_user(person: Person, claims: Mapping[str, Any]):
    User = get_user_model()
    handle = str(claims.get("preferred_username") or claims.get("email") or person.slug)
    handle = re.sub(r"[^\w.@+-]", "-", handle)
    first, _, last = person.name.partition(" ")
    user = User(
        username=_unique(User, "username", handle, 150),
        email=_verified_email(claims),
        first_name=first[:150],
        last_name=last[:150],
    )
    user.set_unusable_password()  # signs in through the provider only
    user.save()
    person.user = user
    person.save(update_fields=["user"])
    return user


def _apply_admin(user, groups: Iterable[str], actor: Actor) -> bool:
    """Members of ``OIDC_ADMIN_GROUPS`` are org admins (``is_superuser``, and ``is_staff`` for
    /admin/). Someone who left the admin groups loses it at the next sign-in, unless the account
    also has a password (a break-glass account managed in Backline)."""
    wanted = {g.lower() for g in settings.OIDC_ADMIN_GROUPS}
    in_group = bool(wanted & {g.lower() for g in groups})
    if in_group and not user.is_superuser:
        user.is_superuser = user.is_staff = True
        user.save(update_fields=["is_superuser", "is_staff"])
        audit.record(actor, "user.admin_granted", user, data={"via": "admin group"})
    elif wanted and not in_group and user.is_superuser and not user.has_usable_password():
        user.is_superuser = user.is_staff = False
        user.save(update_fields=["is_superuser", "is_staff"])
        audit.record(actor, "user.admin_revoked", user, data={"via": "admin group"})
    return bool(user.is_superuser)


def _find_or_create(claims: Mapping[str, Any], sub: str) -> tuple[Person, bool, bool]:
    person = Person.objects.select_for_update(no_key=True).filter(oidc_subject=sub).first()
    if person is not None:
        return person, False, False
    person = _person_by_email(_verified_email(claims))
    created = person is None
    if person is None:
        person = _new_person(claims)
    person.oidc_subject = sub
    person.save(update_fields=["oidc_subject"])
    return person, created, not created


@transaction.atomic
def sign_in_person(claims: Mapping[str, Any], *, actor: Actor) -> SignIn:
    """The Backline user for the provider's verified ``claims``; raises Forbidden for a person
    the directory deactivated or a disabled account."""
    sub = str(claims.get("sub") or "")
    if not sub:
        raise Invalid("The provider's ID token has no subject (sub).")
    person, created, linked = _find_or_create(claims, sub)
    if not person.active:
        raise Forbidden(
            f"The directory has deactivated {person.name}: Backline does not sign them in."
        )
    user = person.user or _new_user(person, claims)
    if not user.is_active:
        raise Forbidden(f"The Backline account {user.get_username()} is disabled.")
    email = _verified_email(claims)
    if email and user.email != email:
        user.email = email
        user.save(update_fields=["email"])
    acting = dataclasses.replace(actor, user=user, door="sso")
    groups = groups_from_claims(claims)
    admin = _apply_admin(user, groups, acting)
    change = sync_directory_memberships(person, squad_slugs_for_groups(groups), actor=acting)
    audit.record(
        acting,
        "person.sign_in",
        person,
        data={
            "created": created,
            "linked_by_email": linked,
            "groups": groups[:50],
            "added": change.added,
            "removed": change.removed,
            "admin": admin,
        },
    )
    return SignIn(user, person, created, linked, admin, change)
