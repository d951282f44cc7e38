"""sign_in_person: the rules between verified claims and Backline's people, without a
provider (the flow itself is tested against oidc-provider in test_oidc_flow.py)."""

import pytest

from identity.services import sign_in_person
from portal.actors import Actor
from portal.errors import Forbidden, Invalid
from squads.models import Membership, Person
from tests.factories import SquadFactory, UserFactory

pytestmark = pytest.mark.django_db
ACTOR = Actor(door="sso", ip="127.0.0.1")


def claims(**extra):
    return {
        "sub": "sub-1",
        "email": "dana@example.com",
        "email_verified": True,
        "name": "Dana Scully",
        "preferred_username": "dana",
        **extra,
    }


def test_a_taken_username_gets_a_suffix(alice):
    result = sign_in_person(
        claims(preferred_username="alice", email="other@example.com"), actor=ACTOR
    )
    assert result.created and result.user.username == "alice-2" and result.user != alice
    assert result.person.slug == "alice-2"


def test_groups_as_one_string_and_through_the_group_map(squad, other_squad, settings):
    settings.OIDC_GROUP_MAP = {"eng-search": "search"}
    result = sign_in_person(claims(groups="playback"), actor=ACTOR)
    assert result.memberships.added == ["playback"]
    result = sign_in_person(claims(groups=["eng-search", "Playback"]), actor=ACTOR)
    assert sorted(
        Membership.objects.filter(person=result.person).values_list("squad__slug", flat=True)
    ) == ["playback", "search"]


def test_a_custom_groups_claim(squad, settings):
    settings.OIDC_GROUPS_CLAIM = "roles"
    result = sign_in_person(claims(roles=["playback"], groups=["search"]), actor=ACTOR)
    assert result.memberships.added == ["playback"]


def test_no_subject_is_invalid(db):
    with pytest.raises(Invalid, match="no subject"):
        sign_in_person(claims(sub=""), actor=ACTOR)


def test_a_disabled_account_is_refused(db):
    user = UserFactory(username="dana", email="dana@example.com", is_active=False)
    with pytest.raises(Forbidden, match="disabled"):
        sign_in_person(claims(), actor=ACTOR)
    # nothing half-applied: the person made for the account and its link were rolled back
    assert not Person.objects.filter(user=user).exists()
    assert not Person.objects.filter(oidc_subject="sub-1").exists()


def test_a_break_glass_admin_with_a_password_keeps_admin(admin_user, settings):
    settings.OIDC_ADMIN_GROUPS = ["backline-admins"]
    admin_user.email = "root@example.com"
    admin_user.save()
    result = sign_in_person(claims(email="root@example.com", groups=[]), actor=ACTOR)
    assert result.user == admin_user and result.admin
    admin_user.refresh_from_db()
    assert admin_user.is_superuser


def test_without_admin_groups_configured_nobody_is_demoted(settings):
    settings.OIDC_ADMIN_GROUPS = []
    first = sign_in_person(claims(), actor=ACTOR)
    first.user.is_superuser = True
    first.user.save()
    assert sign_in_person(claims(), actor=ACTOR).admin


def test_memberships_of_squads_backline_does_not_know_are_ignored(db):
    SquadFactory(slug="known")
    result = sign_in_person(claims(groups=["unknown", "group:default/known"]), actor=ACTOR)
    assert result.memberships.added == ["known"]
