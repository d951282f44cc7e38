"""Discovery follows ``kind: Location`` descriptors inside the same repository (issue 18):
the local GitHub server (tests/github/fakegithub) with real git repositories behind its
contents API, the real importer and PostgreSQL."""

import pytest
from django.core.cache import cache

from portal.errors import Invalid
from squads import services as catalog
from squads.discovery import scan
from squads.discovery.models import DiscoveredEntity, DiscoveredRepository
from squads.models import Service
from tests.github.test_discovery import component, eager, post_push  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_etags():
    cache.clear()


def location(name, *targets, presence=None, single=None):
    lines = "".join(f"    - {t}\n" for t in targets)
    spec = f"  targets:\n{lines}" if targets else ""
    spec += f"  target: {single}\n" if single else ""
    spec += f"  presence: {presence}\n" if presence else ""
    return (
        f"apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: {name}\n"
        f"spec:\n  type: url\n{spec}"
    )


def contents(hub, path, status=200):
    return hub.requests_to(rf"GET /repos/acme/[^/]+/contents/{path}\b", status)


def test_location_targets_are_followed_inside_the_repository(fake_github, squad):
    owner = squad.slug
    fake_github.add_repo(
        "acme/monorepo",
        {
            "catalog-info.yaml": location("root", "./services/player.yaml", "services/more.yaml"),
            "services/player.yaml": component("player", owner),
            "services/more.yaml": location("more", "../shared/search.yaml")
            + "---\n"
            + location("again", single="player.yaml"),  # read once: not a cycle
            "shared/search.yaml": component("search", owner),
        },
    )
    report = scan.scan_installation()
    assert report.imported == 1 and not report.errors, report.errors
    assert set(Service.objects.values_list("slug", flat=True)) == {"player", "search"}
    row = DiscoveredRepository.objects.get(full_name="acme/monorepo")
    assert row.status == "ok" and row.files == [
        "catalog-info.yaml", "services/player.yaml", "services/more.yaml", "shared/search.yaml",
    ]  # fmt: skip
    kept = set(DiscoveredEntity.objects.filter(kind="component").values_list("slug", flat=True))
    assert kept == {"player", "search"}
    assert contents(fake_github, "services/player.yaml") == 1  # the second target: not again

    # a change in a target only: the root answers 304 (its ETag), the target is read again
    fake_github.commit("acme/monorepo", {"shared/search.yaml": component("search", owner,
                       lifecycle="experimental")})  # fmt: skip
    assert scan.scan_installation().imported == 1
    assert Service.objects.get(slug="search").lifecycle == "experimental"
    assert contents(fake_github, "catalog-info.yaml", 304) == 1
    assert contents(fake_github, "shared/search.yaml") == 2
    assert contents(fake_github, "services/player.yaml") == 1  # 304 too

    # a target dropped from the location: its entity is orphaned, the others stay
    fake_github.commit(
        "acme/monorepo", {"catalog-info.yaml": location("root", "services/player.yaml")}
    )
    report = scan.scan_installation()
    assert report.orphaned == 1
    assert DiscoveredEntity.objects.get(slug="search").orphaned_at is not None
    assert DiscoveredEntity.objects.get(slug="player").orphaned_at is None


@pytest.mark.parametrize(
    "target, words",
    [
        ("../../other-repo/catalog-info.yaml", "is outside the repository acme/escape"),
        ("https://github.com/acme/other/blob/main/catalog-info.yaml", "is a URL"),
        ("/etc/passwd", "is absolute"),
        ("file:/etc/passwd", "is a URL"),
        ("services/*.yaml", "has a wildcard"),
        ("services/absent.yaml", "services/absent.yaml is not in the repository acme/escape"),
    ],
)
def test_targets_that_cannot_be_followed_are_a_repository_error(fake_github, squad, target, words):
    fake_github.add_repo(
        "acme/escape",
        {
            "catalog-info.yaml": location("root", "services/ok.yaml", target),
            "services/ok.yaml": component("fine", squad.slug),
        },
    )
    fake_github.add_repo("acme/other", {"catalog-info.yaml": component("other", squad.slug)})
    report = scan.scan_installation()
    assert set(report.errors) == {"acme/escape"} and words in report.errors["acme/escape"]
    row = DiscoveredRepository.objects.get(full_name="acme/escape")
    assert row.status == "error" and row.errors[0]["field"] == "spec.targets[1]"
    assert row.errors[0]["file"] == "acme/escape/catalog-info.yaml"
    assert row.errors[0]["entity"] == "location:default/root"
    assert not Service.objects.filter(slug="fine").exists()  # all or nothing
    assert Service.objects.filter(slug="other").exists()
    assert fake_github.requests_to(r"contents/(\.\.|/|https|file|.*\*)") == 0


def test_a_cycle_of_locations_is_an_error_naming_it(fake_github, squad):
    fake_github.add_repo(
        "acme/loop",
        {
            "catalog-info.yaml": location("root", "a.yaml"),
            "a.yaml": location("a", "sub/b.yaml") + "---\n" + component("looped", squad.slug),
            "sub/b.yaml": location("b", "../a.yaml"),
        },
    )
    report = scan.scan_installation()
    assert "makes a cycle: a.yaml → sub/b.yaml → a.yaml" in report.errors["acme/loop"]
    assert not Service.objects.filter(slug="looped").exists()
    assert contents(fake_github, "a.yaml") == 1  # not read round and round


def test_a_ui_edit_names_the_target_file_that_sets_the_field(fake_github, squad, admin_user):
    from portal.actors import Actor

    fake_github.add_repo(
        "acme/monorepo",
        {
            "catalog-info.yaml": location("root", "services/player.yaml"),
            "services/player.yaml": component("player", squad.slug),
        },
    )
    scan.scan_installation()
    service = Service.objects.get(slug="player")
    with pytest.raises(Invalid) as err:
        catalog.update_service(service, actor=Actor(user=admin_user, door="html"), description="x")
    message = err.value.errors["description"][0]
    assert "set by services/player.yaml in the GitHub repository acme/monorepo" in message
    assert "/blob/main/services/player.yaml" in message


def test_locations_are_bounded_in_depth_and_files(fake_github, squad, settings):
    settings.GITHUB_DISCOVERY_MAX_DEPTH = 2
    settings.GITHUB_DISCOVERY_MAX_FILES = 4
    fake_github.add_repo(
        "acme/deep",
        {
            "catalog-info.yaml": location("root", "l1.yaml"),
            "l1.yaml": location("l1", "l2.yaml"),
            "l2.yaml": location("l2", "l3.yaml"),
            "l3.yaml": component("deep", squad.slug),
        },
    )
    fake_github.add_repo(
        "acme/wide",
        {
            "catalog-info.yaml": location("root", *(f"c{i}.yaml" for i in range(6))),
            **{f"c{i}.yaml": component(f"wide-{i}", squad.slug) for i in range(6)},
        },
    )
    report = scan.scan_installation()
    assert "location target 'l3.yaml': more than 2 locations deep" in report.errors["acme/deep"]
    assert "more than 4 files in one repository" in report.errors["acme/wide"]
    assert not Service.objects.filter(slug__in=["deep", "wide-0"]).exists()
    assert contents(fake_github, "l3.yaml") == 0 and contents(fake_github, "c4.yaml") == 0


def test_an_optional_missing_target_is_skipped(fake_github, squad):
    fake_github.add_repo(
        "acme/optional",
        {
            "catalog-info.yaml": location("root", "here.yaml", "not-yet.yaml", presence="optional"),
            "here.yaml": component("here", squad.slug),
        },
    )
    report = scan.scan_installation()
    assert report.imported == 1 and not report.errors
    assert Service.objects.filter(slug="here").exists()


@pytest.mark.usefixtures("eager")  # the queued scan runs in this process
def test_a_push_touching_a_target_refreshes_the_repository(
    fake_github, squad, settings, shared_data
):
    settings.GITHUB_WEBHOOK_SECRET = "app-secret"
    fake_github.add_repo(
        "acme/monorepo",
        {
            "catalog-info.yaml": location("root", "svc/player.yaml"),
            "svc/player.yaml": component("player", squad.slug),
        },
    )
    scan.scan_installation()
    text = component("player", squad.slug, lifecycle="deprecated")
    sha = fake_github.commit("acme/monorepo", {"svc/player.yaml": text})
    r = post_push(shared_data, "acme/monorepo", sha, ["svc/player.yaml"])
    assert r.status_code == 200 and r.json()["discovery"] == ["acme/monorepo"], r.content
    assert Service.objects.get(slug="player").lifecycle == "deprecated"
