"""What a SCIM push does to Backline: people and their Django users, sign-out, squad memberships.

The storage (``identity.scim.storage``) turns each SCIM write into one of these functions; each
takes the row lock it needs, writes its audit events (door ``scim``, the SCIM token as actor)
and raises ``portal.errors`` domain errors, which the storage maps to SCIM errors.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from identity.directory import squad_slugs_for_groups, sync_directory_memberships
from identity.models import DirectoryGroup, DirectoryUser
from identity.scim import sessions
from portal import audit
from portal.actors import Actor
from portal.errors import Conflict, Invalid
from portal.models import ApiToken
from squads.models import Person

# what is never stored with a User document: write-only or computed by Backline
USER_DROPPED = ("id", "meta", "password", "groups")
GROUP_DROPPED = ("id", "meta", "members")


# --- people -------------------------------------------------------------------------------------
def _display_name(doc: dict[str, Any]) -> str:
    name = doc.get("name") or {}
    given = " ".join(p for p in (name.get("givenName"), name.get("familyName")) if p)
    return (doc.get("displayName") or name.get("formatted") or given or doc["userName"])[:200]


def _email(doc: dict[str, Any]) -> str:
    emails = [e for e in doc.get("emails") or [] if e.get("value")]
    primary = [e for e in emails if e.get("primary")]
    if primary or emails:
        return str((primary or emails)[0]["value"])[:254]
    user_name = str(doc["userName"])
    return user_name if "@" in user_name else ""


def _unique_person_slug(user_name: str) -> str:
    base = slugify(user_name.split("@", 1)[0])[:140] or "person"
    slug, n = base, 1
    while Person.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def _user_for(user_name: str):
    """The Django user a new directory user becomes: an existing local account of that name is
    adopted (so turning SCIM on keeps people's history), except a superuser (the break-glass
    admin stays local); otherwise a new user without a usable password."""
    User = get_user_model()
    username = user_name[:150]
    user = User.objects.filter(username__iexact=username).first()
    if user is None:
        user = User(username=username)
        user.set_unusable_password()
        user.save()
        return user
    if user.is_superuser:
        raise Conflict(
            f"userName '{user_name}' is a local superuser account; the directory cannot take it "
            "over.",
            code="uniqueness",
        )
    if DirectoryUser.objects.filter(person__user=user).exists():
        raise Conflict(f"userName '{user_name}' is already provisioned.", code="uniqueness")
    return user


def _catalog_person(email: str) -> Person | None:
    """A person the catalog already knows by this email (e.g. a Backstage User entity) and
    nobody signs in as yet: the directory's user becomes them, so ownership and history join."""
    if not email:
        return None
    found = list(
        Person.objects.filter(email__iexact=email, user__isnull=True, directory_user__isnull=True)[
            :2
        ]
    )
    return found[0] if len(found) == 1 else None


def _project(du: DirectoryUser, doc: dict[str, Any]) -> None:
    du.user_name = str(doc["userName"])
    du.user_name_key = du.user_name.lower()
    du.external_id = str(doc.get("externalId") or "")[:255]
    du.resource = {k: v for k, v in doc.items() if k not in USER_DROPPED}


def _check_lengths(doc: dict[str, Any], *names: str) -> None:
    """Backline keeps these in 255-character columns: refuse longer values, naming them."""
    too_long = {n: ["At most 255 characters."] for n in names if len(str(doc.get(n) or "")) > 255}
    if too_long:
        raise Invalid(f"{', '.join(too_long)}: at most 255 characters.", errors=too_long)


def _check_user_name(doc: dict[str, Any], *, exclude: str | None = None) -> None:
    _check_lengths(doc, "userName", "externalId")
    user_name = str(doc.get("userName") or "").strip()
    if not user_name:
        raise Invalid("userName is required.", errors={"userName": ["Give a userName."]})
    taken = DirectoryUser.objects.filter(user_name_key=user_name.lower())
    if exclude is not None:
        taken = taken.exclude(pk=exclude)
    if taken.exists():
        raise Conflict(f"userName '{user_name}' is already taken.", code="uniqueness")


@transaction.atomic
def provision_directory_user(doc: dict[str, Any], *, actor: Actor) -> DirectoryUser:
    """A SCIM POST /Users: the person, their Django user (just in time), signed out if inactive."""
    _check_user_name(doc)
    user = _user_for(str(doc["userName"]))
    active = doc.get("active") is not False
    person = Person.objects.filter(user=user).first() or _catalog_person(_email(doc))
    if person is None:
        person = Person(slug=_unique_person_slug(str(doc["userName"])))
    person.user = user
    person.name, person.email = _display_name(doc), _email(doc)
    person.external_id = str(doc.get("externalId") or "")[:255]
    person.active = active
    person.save()
    User = get_user_model()
    User.objects.filter(pk=user.pk).update(is_active=active, email=person.email)
    du = DirectoryUser(person=person)
    _project(du, doc)
    du.save()
    audit.record(actor, "person.provision", person, data={"userName": du.user_name})
    if not active:
        sign_out_everywhere(user, actor=actor, reason="created inactive by the directory")
    return du


@transaction.atomic
def update_directory_user(du: DirectoryUser, doc: dict[str, Any], *, actor: Actor) -> DirectoryUser:
    """A SCIM PUT or PATCH /Users/<id> (``doc`` is the whole new document)."""
    _check_user_name(doc, exclude=du.pk)
    person = Person.objects.select_for_update(no_key=True).get(pk=du.person_id)
    was_active, active = person.active, doc.get("active") is not False
    person.name, person.email = _display_name(doc), _email(doc)
    person.external_id = str(doc.get("externalId") or "")[:255]
    person.active = active
    person.save()
    _project(du, doc)
    du.version += 1
    du.updated_at = timezone.now()
    du.save()
    if person.user_id is not None:
        User = get_user_model()
        username = du.user_name[:150]
        if User.objects.filter(username__iexact=username).exclude(pk=person.user_id).exists():
            raise Conflict(f"userName '{username}' is another account's.", code="uniqueness")
        User.objects.filter(pk=person.user_id).update(
            is_active=active, email=person.email, username=username
        )
    if was_active and not active:
        audit.record(actor, "person.deactivate", person, data={"userName": du.user_name})
        if person.user is not None:
            sign_out_everywhere(person.user, actor=actor, reason="deactivated by the directory")
    elif active and not was_active:
        audit.record(actor, "person.reactivate", person, data={"userName": du.user_name})
    else:
        audit.record(actor, "person.update", person, data={"userName": du.user_name})
    return du


@transaction.atomic
def delete_directory_user(du: DirectoryUser, *, actor: Actor) -> None:
    """A SCIM DELETE /Users/<id>: signed out, deactivated, directory memberships gone; the
    Person stays in the catalog (inactive) with its history."""
    person = Person.objects.select_for_update(no_key=True).get(pk=du.person_id)
    person.active = False
    person.save(update_fields=["active"])
    if person.user is not None:
        get_user_model().objects.filter(pk=person.user.pk).update(is_active=False)
        sign_out_everywhere(person.user, actor=actor, reason="deleted by the directory")
    du.delete()
    sync_directory_memberships(person, [], actor=actor)
    audit.record(actor, "person.deprovision", person, data={"userName": du.user_name})


def sign_out_everywhere(user: Any, *, actor: Actor, reason: str) -> dict[str, int]:
    """End every session of ``user`` and revoke the API tokens they created (they saw the clear
    value once, so a leaver could still use them). Audited; returns the counts."""
    ended = sessions.end_all_sessions(user)
    now = timezone.now()
    revoked = 0
    for token in ApiToken.objects.filter(created_by=user, revoked_at__isnull=True).select_related(
        "squad"
    ):
        if ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now):
            audit.record(actor, "token.revoke", token, squad=token.squad, data={"reason": reason})
            revoked += 1
    audit.record(
        actor,
        "person.sign_out",
        user,
        target_type="auth.user",
        data={"sessions": ended, "tokens_revoked": revoked, "reason": reason},
    )
    return {"sessions": ended, "tokens": revoked}


# --- groups -------------------------------------------------------------------------------------
def _members(member_ids: Iterable[str]) -> list[DirectoryUser]:
    wanted = list(dict.fromkeys(str(m) for m in member_ids))
    found = {du.pk: du for du in DirectoryUser.objects.filter(pk__in=wanted)}
    unknown = [m for m in wanted if m not in found]
    if unknown:
        if DirectoryGroup.objects.filter(pk__in=unknown).exists():
            raise Invalid("Groups nested in groups are not supported: members must be Users.")
        raise Invalid(f"members: no User with id {', '.join(unknown[:5])}.")
    return [found[m] for m in wanted]


def _sync_squads(users: Iterable[DirectoryUser], *, actor: Actor) -> None:
    """Each user's directory memberships become the squads their groups name."""
    for du in users:
        names: list[str] = []
        for name, external_id in du.groups.values_list("display_name", "external_id"):
            names += [name, external_id] if external_id else [name]
        sync_directory_memberships(du.person, squad_slugs_for_groups(names), actor=actor)


def _save_group(group: DirectoryGroup, doc: dict[str, Any], member_ids: Iterable[str]):
    _check_lengths(doc, "displayName", "externalId")
    display_name = str(doc.get("displayName") or "").strip()
    if not display_name:
        raise Invalid("displayName is required.", errors={"displayName": ["Give a displayName."]})
    members = _members(member_ids)
    group.display_name = display_name[:255]
    group.external_id = str(doc.get("externalId") or "")[:255]
    group.resource = {k: v for k, v in doc.items() if k not in GROUP_DROPPED}
    # how the directory described each member (display, type), returned as it was sent
    group.resource["memberEntries"] = [
        {k: v for k, v in m.items() if k in ("value", "display", "type")}
        for m in doc.get("members") or []
        if m.get("value")
    ]
    group.save()
    before = set(group.members.values_list("pk", flat=True))
    group.members.set(members)
    return before, {m.pk for m in members}


@transaction.atomic
def create_directory_group(
    doc: dict[str, Any], member_ids: Iterable[str], *, actor: Actor
) -> DirectoryGroup:
    group = DirectoryGroup()
    _, after = _save_group(group, doc, member_ids)
    squads = sorted(squad_slugs_for_groups([group.display_name, group.external_id]))
    audit.record(
        actor, "directory_group.create", group, data={"members": len(after), "squads": squads}
    )
    _sync_squads(DirectoryUser.objects.filter(pk__in=after).select_related("person"), actor=actor)
    return group


@transaction.atomic
def update_directory_group(
    group: DirectoryGroup, doc: dict[str, Any], member_ids: Iterable[str], *, actor: Actor
) -> DirectoryGroup:
    names_before = (group.display_name, group.external_id)
    before, after = _save_group(group, doc, member_ids)
    group.version += 1
    group.updated_at = timezone.now()
    group.save(update_fields=["version", "updated_at"])
    renamed = names_before != (group.display_name, group.external_id)
    affected = (before | after) if renamed else (before ^ after)
    audit.record(
        actor,
        "directory_group.update",
        group,
        data={"added": len(after - before), "removed": len(before - after), "renamed": renamed},
    )
    _sync_squads(
        DirectoryUser.objects.filter(pk__in=affected).select_related("person"), actor=actor
    )
    return group


@transaction.atomic
def delete_directory_group(group: DirectoryGroup, *, actor: Actor) -> None:
    members = list(group.members.select_related("person"))
    audit.record(actor, "directory_group.delete", group, data={"members": len(members)})
    group.delete()
    _sync_squads(members, actor=actor)
