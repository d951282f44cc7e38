"""Squad memberships that follow the organisation's directory.

Both doors into the directory use this: the OpenID provider's group claim at every sign-in
(``door="sso"``) and SCIM group pushes (``door="scim"``). A group names a squad when it is the
squad's slug, ``group:default/<slug>``, or is mapped by ``OIDC_GROUP_MAP``. Only memberships
marked ``Membership.Source.DIRECTORY`` are added and removed here; manual memberships and roles
(lead, product owner) stay Backline's.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction

from portal import audit
from squads.models import Membership, Person, Squad

ENTITY_PREFIX = "group:default/"


def squad_slugs_for_groups(groups: Iterable[str]) -> set[str]:
    """The squad slugs the directory's group names point at (unknown names are ignored)."""
    mapping: dict[str, str] = settings.OIDC_GROUP_MAP
    wanted: set[str] = set()
    for raw in groups:
        name = str(raw).strip()
        if not name:
            continue
        if name in mapping:
            wanted.add(mapping[name])
            continue
        lowered = name.lower()
        if lowered.startswith(ENTITY_PREFIX):
            lowered = lowered[len(ENTITY_PREFIX) :]
        wanted.add(lowered)
    return set(Squad.objects.filter(slug__in=wanted).values_list("slug", flat=True))


@dataclass
class MembershipChange:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed)


@transaction.atomic
def sync_directory_memberships(
    person: Person, squad_slugs: Iterable[str], *, actor
) -> MembershipChange:
    """Make ``person``'s directory memberships exactly ``squad_slugs``; audit each change.

    A squad the person already belongs to manually stays manual (it is not taken over)."""
    wanted = set(squad_slugs)
    current = {
        m.squad.slug: m for m in Membership.objects.filter(person=person).select_related("squad")
    }
    change = MembershipChange()
    for slug in sorted(wanted - current.keys()):
        squad = Squad.objects.get(slug=slug)
        membership = Membership.objects.create(
            person=person, squad=squad, source=Membership.Source.DIRECTORY
        )
        audit.record(actor, "membership.create", membership, squad=squad, data={"via": "directory"})
        change.added.append(slug)
    for slug, membership in sorted(current.items()):
        if slug in wanted or membership.source != Membership.Source.DIRECTORY:
            continue
        audit.record(actor, "membership.delete", membership, squad=membership.squad)
        membership.delete()
        change.removed.append(slug)
    return change
