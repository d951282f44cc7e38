"""GitHub discovery against the local GitHub server (tests/github/fakegithub), real bare git
repositories behind its contents API, the real Backstage importer and PostgreSQL."""

import json
import time
from pathlib import Path

import pytest
from django.core.cache import cache
from django.test import Client

from portal import celery as portal_celery
from portal import github
from portal.errors import Invalid
from portal.inbound import signature_for
from portal.models import AuditEvent
from squads import services as catalog
from squads.discovery import scan
from squads.discovery.models import DiscoveredEntity, DiscoveredRepository
from squads.models import Service

pytestmark = pytest.mark.django_db


def component(name, owner, **spec):
    body = {"type": "service", "lifecycle": "production", "owner": owner, **spec}
    lines = "".join(f"  {k}: {v}\n" for k, v in body.items())
    return f"apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n{lines}"


@pytest.fixture(autouse=True)
def _fresh_etags():
    cache.clear()


def contents_requests(hub):
    return hub.requests_to(r"GET /repos/.*/contents/", 200)


def test_discovery_of_500_repositories(fake_github, squad):
    owner = squad.slug
    for i in range(495):
        fake_github.add_repo_fast(
            f"acme/svc-{i:03d}", {"catalog-info.yaml": component(f"svc-{i:03d}", owner)}
        )
    bad = {
        "acme/bad-schema": component("bad-schema", owner, lifecycle="[1, 2]"),
        "acme/bad-owner": component("bad-owner", "no-such-squad"),
        "acme/bad-yaml": "kind: Component\nmetadata: {name: x\n",
    }
    for name, text in bad.items():
        fake_github.add_repo_fast(name, {"catalog-info.yaml": text})
    fake_github.add_repo_fast("acme/no-descriptor-1", {"README.md": "hi"})
    fake_github.add_repo_fast("acme/no-descriptor-2", {"README.md": "hi"})

    started = time.monotonic()
    report = scan.scan_installation()
    first = time.monotonic() - started
    assert report.repositories == 500
    assert report.imported == 495 and report.missing == 2
    assert set(report.errors) == set(bad)
    assert Service.objects.filter(slug__startswith="svc-").count() == 495
    assert not Service.objects.filter(slug__startswith="bad-").exists()  # nothing half-done
    row = DiscoveredRepository.objects.get(full_name="acme/bad-owner")
    assert row.status == "error" and "acme/bad-owner/catalog-info.yaml" in row.error
    assert "no-such-squad" in row.error
    assert fake_github.requests_to(r"GET /installation/repositories", 200) == 5  # Link pages
    assert contents_requests(fake_github) == 498
    assert fake_github.requests_to(r"GET /repos/.*/contents/", 404) == 2

    started = time.monotonic()
    again = scan.scan_installation()
    print(
        f"discovery of 500 repositories: first scan {first:.1f}s, second {time.monotonic() - started:.1f}s"
    )
    assert again.repositories == 500 and again.unchanged == 497
    assert contents_requests(fake_github) == 498  # the second scan read no descriptor
    assert fake_github.requests_to(r"GET /repos/.*/contents/", 404) == 2
    assert fake_github.requests_to(r"GET /installation/repositories", 304) == 5


def test_removing_a_descriptor_orphans_then_removes(fake_github, squad, settings):
    fake_github.add_repo("acme/player", {"catalog-info.yaml": component("player", squad.slug)})
    scan.scan_installation()
    assert Service.objects.filter(slug="player").exists()
    fake_github.commit("acme/player", {"catalog-info.yaml": None}, message="drop descriptor")
    settings.GITHUB_ORPHAN_GRACE_SECONDS = 3600
    report = scan.scan_installation()
    assert report.orphaned == 1 and report.removed == 0
    entity = DiscoveredEntity.objects.get(slug="player")
    assert entity.orphaned_at is not None and Service.objects.filter(slug="player").exists()
    assert AuditEvent.objects.filter(action="catalog.discovery.orphaned").count() == 1
    settings.GITHUB_ORPHAN_GRACE_SECONDS = 0
    assert scan.sweep_orphans() == 1
    assert not Service.objects.filter(slug="player").exists()
    removed = AuditEvent.objects.get(action="catalog.discovery.removed")
    assert removed.data["entity"] == "component:player"


def test_github_refusals_are_per_repository_or_stop_the_scan(fake_github, squad):
    fake_github.add_repo_fast("acme/a", {"catalog-info.yaml": component("a", squad.slug)})
    fake_github.add_repo_fast("acme/b", {"catalog-info.yaml": component("b", squad.slug)})
    fake_github.forbidden_repos.add("acme/b")
    report = scan.scan_installation()
    assert report.imported == 1
    assert "403" in report.errors["acme/b"] and "not accessible" in report.errors["acme/b"]
    assert DiscoveredRepository.objects.get(full_name="acme/b").status == "error"
    fake_github.primary_exhausted = True
    before = list(DiscoveredRepository.objects.values_list("full_name", "status", "scanned_at"))
    with pytest.raises(github.RateLimited, match="rate limit"):
        scan.scan_installation()
    assert (
        list(DiscoveredRepository.objects.values_list("full_name", "status", "scanned_at"))
        == before
    )


def test_a_ui_edit_of_a_descriptor_field_is_refused_naming_the_file(fake_github, squad, admin_user):
    from portal.actors import Actor

    fake_github.add_repo("acme/player", {"catalog-info.yaml": component("player", squad.slug)})
    scan.scan_installation()
    service = Service.objects.get(slug="player")
    actor = Actor(user=admin_user, door="html")
    with pytest.raises(Invalid) as err:
        catalog.update_service(service, actor=actor, description="edited in the UI")
    message = err.value.errors["description"][0]
    assert "catalog-info.yaml" in message and "acme/player" in message
    catalog.update_service(service, actor=actor, webhook_secret="s3cret")  # not the file's
    assert Service.objects.get(slug="player").webhook_secret == "s3cret"


@pytest.fixture
def eager():
    before = portal_celery.app.conf.task_always_eager
    portal_celery.app.conf.task_always_eager = True
    yield
    portal_celery.app.conf.task_always_eager = before


def post_push(shared_data, full_name, sha, modified, secret="app-secret"):
    """A real push payload for ``full_name``'s main branch, signed, to ``/hooks/github``."""
    data = json.loads(
        (shared_data / "github-webhooks" / "push-with-installation.payload.json").read_text()
    )
    data.update(ref="refs/heads/main", after=sha, deleted=False)
    data["repository"]["full_name"] = full_name
    data["commits"] = [{"id": sha, "added": [], "removed": [], "modified": modified}]
    raw = json.dumps(data).encode()
    return Client().post(
        "/hooks/github", raw, content_type="application/json", HTTP_X_GITHUB_EVENT="push",
        HTTP_X_HUB_SIGNATURE_256=signature_for(secret, raw),
    )  # fmt: skip


def test_a_push_touching_the_descriptor_refreshes_it(
    fake_github, squad, settings, eager, shared_data
):
    settings.GITHUB_WEBHOOK_SECRET = "app-secret"
    fake_github.add_repo("acme/player", {"catalog-info.yaml": component("player", squad.slug)})
    scan.scan_installation()
    text = component("player", squad.slug).replace("production", "experimental")
    sha = fake_github.commit("acme/player", {"catalog-info.yaml": text})
    r = post_push(shared_data, "acme/player", sha, ["catalog-info.yaml"])
    assert r.status_code == 200 and r.json()["discovery"] == ["acme/player"], r.content
    assert Service.objects.get(slug="player").lifecycle == "experimental"


def test_the_discovery_page_shows_errors_per_repository(fake_github, squad, alice):
    fake_github.add_repo_fast("acme/good", {"catalog-info.yaml": component("good", squad.slug)})
    fake_github.add_repo_fast("acme/broken", {"catalog-info.yaml": component("broken", "nobody")})
    scan.scan_installation()
    client = Client()
    assert client.get("/catalog/discovery/").status_code == 302  # sign in first
    client.force_login(alice)
    page = client.get("/catalog/discovery/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-repository="acme/broken" data-status="error"' in html
    assert 'data-repository="acme/good" data-status="ok"' in html
    assert "acme/broken/catalog-info.yaml" in html and "nobody" in html
    only_errors = client.get("/catalog/discovery/?status=error").content.decode()
    assert "acme/broken" in only_errors and "acme/good" not in only_errors


def test_the_api_and_the_edit_form_refuse_descriptor_fields_too(fake_github, squad, alice):
    from tests.conftest import client_for

    fake_github.add_repo("acme/player", {"catalog-info.yaml": component("player", squad.slug)})
    scan.scan_installation()
    r = client_for(alice).patch(
        "/api/v1/services/player/", {"lifecycle": "deprecated"}, format="json"
    )
    assert r.status_code == 400
    assert (
        "catalog-info.yaml in the GitHub repository acme/player"
        in r.json()["errors"]["lifecycle"][0]
    )
    assert Service.objects.get(slug="player").lifecycle == "production"
    r = client_for(alice).patch("/api/v1/services/player/", {"metrics_urls": []}, format="json")
    assert r.status_code == 200, r.content


def form_data(service, **changes):
    data = {
        "name": service.name, "description": service.description, "owner": service.owner_id,
        "system": service.system_id or "", "type": service.type, "lifecycle": service.lifecycle,
        "tier": service.tier, "repository_url": service.repository_url,
        "default_branch": service.default_branch, "runbook_url": service.runbook_url,
        "oncall": service.oncall, "tags_text": ", ".join(service.tags.values_list("name", flat=True)),
    }  # fmt: skip
    return {**data, **changes}


def test_the_edit_form_saves_unchanged_fields_and_refuses_changed_ones(fake_github, squad, alice):
    fake_github.add_repo("acme/player", {"catalog-info.yaml": component("player", squad.slug)})
    scan.scan_installation()
    service = Service.objects.get(slug="player")
    client = Client()
    client.force_login(alice)
    url = "/services/player/edit/"
    assert client.post(url, form_data(service)).status_code == 302  # nothing changed: fine
    r = client.post(url, form_data(service, description="changed here"))
    assert r.status_code == 200  # the form again, with the field's error
    assert "catalog-info.yaml in the GitHub repository acme/player" in r.content.decode()
    assert Service.objects.get(slug="player").description != "changed here"


def test_a_restored_descriptor_clears_the_orphan_mark(fake_github, squad, settings):
    fake_github.add_repo("acme/player", {"catalog-info.yaml": component("player", squad.slug)})
    scan.scan_installation()
    fake_github.commit("acme/player", {"catalog-info.yaml": None})
    scan.scan_installation()
    assert DiscoveredEntity.objects.get(slug="player").orphaned_at is not None
    fake_github.commit("acme/player", {"catalog-info.yaml": component("player", squad.slug)})
    scan.scan_installation()
    assert DiscoveredEntity.objects.get(slug="player").orphaned_at is None
    settings.GITHUB_ORPHAN_GRACE_SECONDS = 0
    assert scan.sweep_orphans() == 0 and Service.objects.filter(slug="player").exists()


def test_an_installation_event_queues_a_scan(fake_github, squad, settings, eager):
    settings.GITHUB_WEBHOOK_SECRET = "app-secret"
    fake_github.add_repo_fast("acme/new", {"catalog-info.yaml": component("new-one", squad.slug)})
    data = json.loads(
        (
            Path(__file__).resolve().parents[1]
            / "data"
            / "octokit-webhooks"
            / "installation"
            / "created.payload.json"
        ).read_text()
    )
    data["installation"]["id"] = fake_github.installation_id
    raw = json.dumps(data).encode()
    r = Client().post(
        "/hooks/github", raw, content_type="application/json", HTTP_X_GITHUB_EVENT="installation",
        HTTP_X_HUB_SIGNATURE_256=signature_for("app-secret", raw),
    )  # fmt: skip
    assert r.status_code == 200 and r.json()["discovery"] == "scan queued", r.content
    assert Service.objects.filter(slug="new-one").exists()


def test_a_rate_limit_mid_scan_stops_it_and_orphans_nothing(fake_github, squad):
    for name in ("a", "b", "c"):
        fake_github.add_repo("acme/" + name, {"catalog-info.yaml": component(name, squad.slug)})
    scan.scan_installation()
    for name in ("a", "b", "c"):
        fake_github.commit("acme/" + name, {"catalog-info.yaml": None})
    fake_github.secondary_limit_after = 2  # the listing and one descriptor, then 403 Retry-After
    with pytest.raises(github.RateLimited, match="try again in 120 s"):
        scan.scan_installation()
    assert fake_github.requests_to(r"contents/catalog-info.yaml", 403) == 1  # it stopped there
    assert DiscoveredEntity.objects.filter(orphaned_at__isnull=False).count() == 1
    assert Service.objects.filter(slug__in=["a", "b", "c"]).count() == 3


def test_simple_mode_with_a_token_discovers_the_tokens_repositories(fake_github, squad, settings):
    fake_github.simple_token = "ghp_simple"
    settings.GITHUB_TOKEN, settings.GITHUB_APP_ID = "ghp_simple", ""
    for i in range(120):
        fake_github.add_repo_fast(
            f"acme/t{i:03d}", {"catalog-info.yaml": component(f"t{i:03d}", squad.slug)}
        )
    report = scan.scan_installation()
    assert report.repositories == 120 and report.imported == 120, report.errors
    assert fake_github.requests_to(r"GET /user/repos", 200) == 2
