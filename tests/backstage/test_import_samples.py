"""Every file of the shared Backstage sample (../shared/data/backstage-catalog/)."""

import pytest

from portal.models import AuditEvent
from squads import backstage
from squads.models import (
    Api,
    Dependency,
    Domain,
    ForeignEntity,
    Membership,
    Person,
    Service,
    Squad,
    System,
    Tribe,
)
from tests.backstage.conftest import run_import, snapshot
from tests.conftest import DATA

CATALOG = DATA / "backstage-catalog"
ALL_FILES = sorted(p.relative_to(CATALOG).as_posix() for p in CATALOG.rglob("*.y*ml"))

# Order in which importing the files one by one into the same database works: what a file
# refers to is already there. Expected failures: the two known defects of the sample.
ORDER = [
    "acme/org.yaml",
    *[f for f in ALL_FILES if f.startswith("acme/") and f != "acme/org.yaml"],
    "acme-corp.yaml",
    *[f for f in ALL_FILES if f.startswith("domains/")],
    "all-domains.yaml",
    *[f for f in ALL_FILES if f.startswith("systems/")],
    "all-systems.yaml",
    *[f for f in ALL_FILES if f.startswith("resources/")],
    "all-resources.yaml",
    *[f for f in ALL_FILES if f.startswith("apis/")],
    "all-apis.yaml",
    *[f for f in ALL_FILES if f.startswith("components/")],
    "all-components.yaml",
    *[f for f in ALL_FILES if f.startswith("ai-resources/")],
    "all-ai-resources.yaml",
    "all.yaml",
]
MISSING_TARGET = (
    "all-apis.yaml",
    "location:default/example-apis",
    "spec.targets[2]",
    "location target './apis/hello-world-api.yaml' not found",
)
HELLO_WORLD = (
    "components/petstore-component.yaml",
    "component:default/petstore",
    "spec.providesApis[2]",
    "api:default/hello-world does not exist",
)
EXPECTED_ERRORS = {
    "all-apis.yaml": [MISSING_TARGET],
    "components/petstore-component.yaml": [HELLO_WORLD],
    "all-components.yaml": [HELLO_WORLD],
    "all.yaml": [MISSING_TARGET, HELLO_WORLD],
}


def _assert_errors(exc, expected):
    got = [(e.file, e.entity, e.field, e.message) for e in exc.errors]
    assert len(got) == len(expected), got
    for (file, entity, field, message), (efile, eentity, efield, emessage) in zip(
        got, expected, strict=True
    ):
        assert file.endswith(efile), (file, efile)
        assert (entity, field) == (eentity, efield)
        assert message.startswith(emessage), message
    for e in exc.errors:
        assert e.document == 1
        text = str(e)
        assert e.file in text and "document 1" in text and e.entity in text and e.field in text


def test_order_covers_every_file():
    assert sorted(set(ORDER)) == ALL_FILES
    assert len(ALL_FILES) >= 50


def test_every_file_individually_in_dependency_order(db):
    for name in ORDER:
        before = snapshot()
        expected = EXPECTED_ERRORS.get(name)
        if expected:
            with pytest.raises(backstage.ImportFailed) as info:
                run_import([CATALOG / name])
            _assert_errors(info.value, expected)
            assert snapshot() == before, f"{name} changed the database although it failed"
        else:
            report = run_import([CATALOG / name])
            assert report.ok, name
    # The ones that failed alone are all there except petstore (the sample's defect).
    assert set(Service.objects.values_list("slug", flat=True)) == {
        "artist-lookup",
        "playback-order",
        "podcast-api",
        "queue-proxy",
        "searcher",
        "playback-sdk",
        "www-artist",
        "shuffle-api",
        "wayback-archive",
        "wayback-archive-ingestion",
        "wayback-archive-storage",
        "wayback-search",
    }


@pytest.mark.parametrize("name", ALL_FILES)
def test_every_file_alone_on_an_empty_catalog(db, name):
    """Alone, a file either imports or fails cleanly: every error names file, document, entity
    and field, and nothing is written."""
    try:
        report = run_import([CATALOG / name])
    except backstage.ImportFailed as exc:
        assert exc.errors
        for e in exc.errors:
            assert e.file and e.document and e.entity and e.field and e.message, e
        assert not Tribe.objects.exists() and not Service.objects.exists()
        assert not Person.objects.exists() and not Api.objects.exists()
    else:
        assert report.ok


def test_all_and_org_together_fail_with_the_two_known_defects(db, alice):
    before = snapshot()
    with pytest.raises(backstage.ImportFailed) as info:
        run_import([CATALOG / "all.yaml", CATALOG / "acme" / "org.yaml"])
    _assert_errors(info.value, [MISSING_TARGET, HELLO_WORLD])
    message = str(info.value)
    assert "all-apis.yaml: document 1 (location:default/example-apis): spec.targets[2]" in message
    assert (
        "petstore-component.yaml: document 1 (component:default/petstore): "
        "spec.providesApis[2]: api:default/hello-world does not exist" in message
    )
    assert snapshot() == before
    assert not AuditEvent.objects.filter(action="catalog.import").exists()


def test_complete_catalog_imports_with_relations(db, complete_catalog):
    report = run_import([complete_catalog / "all.yaml", complete_catalog / "acme" / "org.yaml"])
    c = report.counts
    assert {k: v["created"] for k, v in c.items()} == {
        "tribe": 4,
        "squad": 5,
        "person": 17,
        "domain": 3,
        "system": 3,
        "api": 11,
        "resource": 1,
        "component": 13,
        "other": 2,  # the two AiResources, stored as written (Backline does not model them)
    }
    assert report.updated == report.unchanged == 0
    assert report.skipped == {}
    assert ForeignEntity.objects.filter(kind="airesource").count() == 2
    # groups: tribes keep their parents, squads their nearest tribe
    assert Tribe.objects.get(slug="acme-corp").kind == "organization"
    assert Tribe.objects.get(slug="backstage").parent.slug == "infrastructure"
    assert Tribe.objects.get(slug="infrastructure").parent.slug == "acme-corp"
    team_a = Squad.objects.get(slug="team-a")
    assert team_a.tribe.slug == "backstage" and team_a.name == "team-a"
    assert team_a.email == "team-a@example.com"
    assert Squad.objects.get(slug="team-e").tribe.slug == "boxoffice"
    # users and memberships, a second namespace kept apart
    assert set(team_a.memberships.values_list("person__slug", flat=True)) == {
        "breanna.davison",
        "janelle.dawe",
        "nigel.manning",
        "guest",
        "development--guest",
    }
    assert Person.objects.get(slug="janelle.dawe").name == "Janelle Dawe"
    assert Membership.objects.filter(squad__slug="team-b").count() == 5
    # components
    petstore = Service.objects.get(slug="petstore")
    assert petstore.owner.slug == "team-c" and petstore.lifecycle == "experimental"
    assert set(petstore.provides_apis.values_list("slug", flat=True)) == {
        "petstore",
        "streetlights",
        "hello-world",
    }
    assert petstore.links[0]["url"] == "https://github.com/swagger-api/swagger-petstore"
    search = Service.objects.get(slug="wayback-search")
    assert list(search.consumes_apis.values_list("slug", flat=True)) == ["wayback-archive"]
    assert set(Service.objects.get(slug="artist-lookup").tags.values_list("name", flat=True)) == {
        "java",
        "data",
    }
    assert Service.objects.get(slug="artist-lookup").system.slug == "artist-engagement-portal"
    # an owner that is a user stands for their team
    assert Service.objects.get(slug="searcher").owner.slug == "team-a"
    assert Service.objects.get(slug="playback-order").owner.slug == "team-a"
    # systems, domains, APIs
    assert System.objects.get(slug="podcast").domain.slug == "playback"
    assert Domain.objects.get(slug="audio").owner_tribe.slug == "acme-corp"
    assert Domain.objects.get(slug="playback").owner.slug == "team-c"  # user:frank.tiernan
    assert "webhooks" in Api.objects.get(slug="petstore-webhook").definition  # $text followed
    assert Api.objects.get(slug="starwars-graphql").definition.startswith("schema {")
    assert Api.objects.get(slug="local-inference-server").name == "Local Inference Server"
    assert Dependency.objects.count() == 0
    events = AuditEvent.objects.filter(action="catalog.import")
    assert events.count() == 1 and events.get().data["created"] == report.created


def test_second_import_changes_nothing(db, complete_catalog):
    paths = [complete_catalog / "all.yaml", complete_catalog / "acme" / "org.yaml"]
    first = run_import(paths)
    before = snapshot()
    second = run_import(paths)
    assert second.created == second.updated == 0
    assert second.unchanged == first.created
    assert all(v["created"] == v["updated"] == 0 for v in second.counts.values())
    assert snapshot() == before


def test_directory_import_dedupes_followed_targets(db, complete_catalog):
    report = run_import([complete_catalog])
    assert report.counts["component"]["created"] == 13
    assert any("not a Backstage entity" in w for w in report.warnings)  # the *.oas.yaml files


def test_dry_run_writes_nothing(db, complete_catalog):
    report = run_import(
        [complete_catalog / "all.yaml", complete_catalog / "acme-corp.yaml"], dry_run=True
    )
    assert report.dry_run and report.created == 59  # with the 2 AiResources
    assert not Service.objects.exists() and not Tribe.objects.exists()
    assert not AuditEvent.objects.exists()
