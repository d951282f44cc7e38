"""Directory memberships follow the directory's groups; manual memberships stay (issue 15)."""

from identity.directory import squad_slugs_for_groups, sync_directory_memberships
from portal.actors import Actor
from portal.models import AuditEvent
from squads.models import Membership
from tests.factories import MembershipFactory, PersonFactory, SquadFactory


def test_group_names_resolve_to_squads(db, settings):
    SquadFactory(slug="playback")
    SquadFactory(slug="search")
    settings.OIDC_GROUP_MAP = {"eng-search": "search"}
    assert squad_slugs_for_groups(["Playback", "unknown"]) == {"playback"}
    assert squad_slugs_for_groups(["group:default/playback"]) == {"playback"}
    assert squad_slugs_for_groups(["eng-search", " "]) == {"search"}


def test_sync_adds_and_removes_only_directory_memberships(db):
    for slug in ("playback", "search"):
        SquadFactory(slug=slug)
    infra = SquadFactory(slug="infra")
    person = PersonFactory()
    MembershipFactory(person=person, squad=infra)  # typed in by hand
    actor = Actor.system("directory", door="sso")

    change = sync_directory_memberships(person, {"playback", "search", "infra"}, actor=actor)
    assert change.added == ["playback", "search"] and change.removed == []
    sources = dict(Membership.objects.filter(person=person).values_list("squad__slug", "source"))
    assert sources == {"playback": "directory", "search": "directory", "infra": "manual"}

    change = sync_directory_memberships(person, {"search"}, actor=actor)
    assert change.removed == ["playback"]
    assert set(person.memberships.values_list("squad__slug", flat=True)) == {"search", "infra"}
    doors = set(
        AuditEvent.objects.filter(action__startswith="membership.").values_list("door", flat=True)
    )
    assert doors == {"sso"}
    assert not sync_directory_memberships(person, {"search"}, actor=actor)
