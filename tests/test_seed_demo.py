"""seed_demo loads a believable organisation and is idempotent (on PostgreSQL)."""

import sys
import types
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from portal.models import AuditEvent
from portal.registry import registry
from squads.models import (
    Api,
    Dependency,
    Domain,
    Lifecycle,
    Membership,
    Person,
    Resource,
    Service,
    Squad,
    System,
    Tag,
    Tribe,
)

CATALOG = (
    Tribe,
    Squad,
    Person,
    Membership,
    Domain,
    System,
    Tag,
    Service,
    Api,
    Resource,
    Dependency,
)


def counts():
    User = get_user_model()
    snapshot = {m.__name__: m.objects.count() for m in CATALOG}
    snapshot["User"] = User.objects.count()
    snapshot["provides"] = Service.provides_apis.through.objects.count()
    snapshot["consumes"] = Service.consumes_apis.through.objects.count()
    snapshot["service_tags"] = Service.tags.through.objects.count()
    return snapshot


def rows():
    """Every field of every catalog row, to prove a second run changes nothing at all."""
    return {
        m.__name__: sorted(map(repr, m.objects.order_by("pk").values_list()))
        for m in (Tribe, Squad, Person, Membership, System, Service, Api, Resource, Dependency)
    }


def seed(*args):
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def test_seed_demo_minimums_and_idempotent(db):
    seed("--catalog-only")
    first, first_rows = counts(), rows()
    out = seed("--catalog-only")
    assert "0 created, 0 updated" in out
    assert counts() == first
    assert rows() == first_rows

    assert first["Tribe"] >= 3
    assert first["Squad"] >= 8
    assert first["Person"] >= 38
    assert first["Service"] >= 30
    assert first["System"] >= 8
    assert first["Domain"] >= 3
    assert first["Api"] >= 10
    assert first["Dependency"] >= 50
    assert first["provides"] >= 10 and first["consumes"] >= 10
    slugs = set(Squad.objects.values_list("slug", flat=True))
    assert {"playback", "search", "payments", "playlists", "recommendations", "identity"} <= slugs

    for squad in Squad.objects.all():
        assert squad.mission and squad.oncall_contact and squad.tribe_id
        assert squad.chat_channel == f"#squad-{squad.slug}"
        roles = set(squad.memberships.values_list("role", flat=True))
        assert {Membership.Role.LEAD, Membership.Role.PRODUCT_OWNER} <= roles, squad.slug

    services = Service.objects.all()
    assert set(services.values_list("type", flat=True)) == {"service", "website", "library"}
    assert services.filter(lifecycle=Lifecycle.DEPRECATED).count() == 2
    assert services.filter(lifecycle=Lifecycle.EXPERIMENTAL).exists()
    assert services.filter(lifecycle=Lifecycle.PRODUCTION).count() > services.count() / 2
    assert set(services.values_list("tier", flat=True)) == {1, 2, 3}
    assert not services.filter(owner=None).exists() and not services.filter(system=None).exists()
    assert all(
        s.repository_url.startswith("https://git.example.com/") and s.description for s in services
    )
    with_runbook = services.exclude(runbook_url="").count()
    assert services.count() / 2 < with_runbook < services.count()  # variety for scorecards
    assert services.exclude(oncall="").count() > services.count() / 2
    assert Dependency.objects.filter(target_service__lifecycle=Lifecycle.DEPRECATED).exists()
    resource_types = set(Resource.objects.values_list("type", flat=True))
    assert {"database", "kafka-topic", "cache"} <= resource_types
    assert {"playback-api", "playlist-service", "search-indexer", "recs-ranker"} <= set(
        services.values_list("slug", flat=True)
    )
    # Seed data writes no audit events.
    assert not AuditEvent.objects.exists()
    # The logins are checked on the same seeded database (one seed fewer).
    check_logins()


def check_logins():
    """The demo sign-ins, and a re-run keeping a changed password but restoring the admin."""
    User = get_user_model()
    admin = User.objects.get(username="admin")
    assert admin.is_staff and admin.is_superuser and admin.check_password("backline-admin")
    for name in ("alice", "bob", "charlie"):
        user = User.objects.get(username=name)
        assert user.check_password("backline-demo") and not user.is_staff
        assert user.person.slug == name
    assert Membership.objects.get(person__slug="alice").squad.slug == "playback"
    assert Membership.objects.get(person__slug="alice").role == Membership.Role.LEAD
    assert Membership.objects.get(person__slug="bob").squad.slug == "search"
    assert not Membership.objects.filter(person__slug="charlie").exists()

    # A changed password is left alone on a re-run; a demoted admin is restored.
    alice = User.objects.get(username="alice")
    alice.set_password("changed-by-alice")
    alice.save()
    User.objects.filter(username="admin").update(is_superuser=False)
    seed("--catalog-only")
    assert User.objects.get(username="alice").check_password("changed-by-alice")
    assert User.objects.get(username="admin").is_superuser


def test_seed_demo_calls_registered_modules(db, monkeypatch):
    """Apps register their demo module (portal.registry.demo_seed); the catalog's command
    names none of them. (It used to probe a fixed list and skip missing modules; a registered
    module is imported, so there is no missing one to skip.)"""
    calls = []
    fake = types.ModuleType("squads._fake_demo")
    fake.seed = lambda stdout: calls.append(stdout)
    monkeypatch.setitem(sys.modules, "squads._fake_demo", fake)
    monkeypatch.setattr(registry, "demo_seeds", [(10, "squads._fake_demo")])
    out = seed()
    assert len(calls) == 1
    assert "seeding squads._fake_demo" in out


def test_registered_demo_modules_cover_every_app(db):
    names = [name for _order, name in registry.demo_seeds]
    assert names == ["pipelines.demo", "releases.demo", "monitoring.demo", "infra.demo"]


def test_seed_demo_optional_module_import_errors_surface(db, monkeypatch):
    broken = types.ModuleType("squads._broken_demo")
    monkeypatch.setitem(sys.modules, "squads._broken_demo", broken)

    def seed_fn(stdout):
        raise RuntimeError("boom")

    broken.seed = seed_fn
    monkeypatch.setattr(registry, "demo_seeds", [(10, "squads._broken_demo")])
    with pytest.raises(RuntimeError, match="boom"):
        seed()


@pytest.mark.slow
@pytest.mark.usefixtures("drop_state_roles")  # the infra demo plans on the pg backend
def test_full_seed_demo_is_idempotent(db):
    """The whole seed, with whatever pipelines/monitoring/infra demo modules exist."""
    seed()
    first = counts()
    seed()
    assert counts() == first
