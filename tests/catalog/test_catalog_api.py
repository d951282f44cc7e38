import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from portal.models import AuditEvent
from squads.models import Dependency, Service
from tests.conftest import client_for, token_client
from tests.factories import (
    DependencyFactory,
    MembershipFactory,
    PersonFactory,
    ResourceFactory,
    ServiceFactory,
    SquadFactory,
    SystemFactory,
)


def test_anonymous_gets_401_on_every_catalog_list(api, db):
    for path in [
        "/api/v1/tribes/",
        "/api/v1/squads/",
        "/api/v1/people/",
        "/api/v1/services/",
        "/api/v1/systems/",
        "/api/v1/scorecards/",
    ]:
        resp = api.get(path)
        assert resp.status_code == 401, path
        assert "results" not in resp.json()


def test_services_filter_by_owner_and_squad_detail_has_members_and_services(
    alice, squad, other_squad
):
    s1 = ServiceFactory(slug="playback-api", owner=squad)
    ServiceFactory(slug="search-api", owner=other_squad)
    DependencyFactory(source=s1, target_service=Service.objects.get(slug="search-api"))
    c = client_for(alice)
    body = c.get("/api/v1/services/?owner=playback").json()
    assert [r["slug"] for r in body["results"]] == ["playback-api"]
    detail = c.get("/api/v1/services/playback-api/").json()
    assert detail["dependencies"] == [
        {"id": Dependency.objects.get().pk, "kind": "service", "slug": "search-api"}
    ]
    assert c.get("/api/v1/services/search-api/").json()["dependents"] == ["playback-api"]
    sq = c.get("/api/v1/squads/playback/").json()
    assert sq["services"] == ["playback-api"]
    assert sq["members"][0]["person"] == "alice" and sq["members"][0]["role"] == "lead"


def test_filters_lifecycle_tier_system_tag_and_search(alice, squad):
    sysm = SystemFactory(slug="audio")
    a = ServiceFactory(
        slug="audio-cdn",
        name="Audio CDN edge",
        description="Serves encoded audio files",
        owner=squad,
        tier=1,
        lifecycle="production",
        system=sysm,
    )
    ServiceFactory(
        slug="legacy-player",
        name="Legacy player",
        description="Old thing",
        owner=squad,
        tier=3,
        lifecycle="deprecated",
    )
    from squads.services import set_tags

    set_tags(a, ["cdn", "go"])
    c = client_for(alice)

    def slugs(q):
        return [r["slug"] for r in c.get(f"/api/v1/services/?{q}").json()["results"]]

    assert slugs("lifecycle=deprecated") == ["legacy-player"]
    assert slugs("tier=1") == ["audio-cdn"]
    assert slugs("system=audio") == ["audio-cdn"]
    assert slugs("tag=cdn") == ["audio-cdn"]
    assert slugs("search=encoded") == ["audio-cdn"]  # full-text on description (stemmed)
    assert slugs("search=files") == ["audio-cdn"]
    assert slugs("search=legacy") == ["legacy-player"]
    assert slugs("search=nothing-like-this") == []
    bad = c.get("/api/v1/services/?lifecycle=bogus")
    assert bad.status_code == 400
    assert "lifecycle" in bad.json()["errors"]


def test_member_can_create_and_update_service_and_it_is_audited(alice, squad):
    c = client_for(alice)
    resp = c.post(
        "/api/v1/services/",
        {"slug": "queue-svc", "name": "Queue", "owner": "playback", "tier": 2, "tags": ["kafka"]},
        format="json",
    )
    assert resp.status_code == 201, resp.content
    assert resp.json()["tags"] == ["kafka"]
    resp = c.patch(
        "/api/v1/services/queue-svc/",
        {"repository_url": "file:///tmp/repo.git", "webhook_secret": "s3cret"},
        format="json",
    )
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert "webhook_secret" not in body and body["has_webhook_secret"] is True
    assert Service.objects.get(slug="queue-svc").webhook_secret == "s3cret"
    actions = list(AuditEvent.objects.order_by("id").values_list("action", "door"))
    assert actions == [("service.create", "ui"), ("service.update", "ui")] or actions == [
        ("service.create", "api"),
        ("service.update", "api"),
    ]
    ev = AuditEvent.objects.get(action="service.update")
    assert ev.data["changed"]["webhook_secret"] == "***"


def test_non_member_viewer_and_scopeless_token_are_refused(bob, charlie, squad, make_token):
    ServiceFactory(slug="playback-api", owner=squad)
    for user in (bob, charlie):
        resp = client_for(user).patch(
            "/api/v1/services/playback-api/", {"description": "hacked"}, format="json"
        )
        assert resp.status_code == 403
        assert "owning squad" in resp.json()["message"]
    raw = make_token(squad, [])
    assert (
        token_client(raw)
        .patch("/api/v1/services/playback-api/", {"description": "x"}, format="json")
        .status_code
        == 403
    )
    scoped = make_token(squad, ["catalog:write"], name="writer")
    assert (
        token_client(scoped)
        .patch("/api/v1/services/playback-api/", {"description": "ok"}, format="json")
        .status_code
        == 200
    )
    other = SquadFactory(slug="other")
    ServiceFactory(slug="other-svc", owner=other)
    assert (
        token_client(scoped)
        .patch("/api/v1/services/other-svc/", {"description": "x"}, format="json")
        .status_code
        == 403
    )
    assert Service.objects.get(slug="other-svc").description == "A service"


def test_bad_input_gives_400_with_field_and_message(alice, squad):
    c = client_for(alice)
    resp = c.post(
        "/api/v1/services/",
        {"slug": "bad slug!", "name": "", "owner": "nope", "tier": 7},
        format="json",
    )
    assert resp.status_code == 400
    body = resp.json()
    assert body["code"] == "invalid"
    assert {"slug", "name", "owner", "tier"} <= set(body["errors"])
    assert Service.objects.count() == 0


def test_dependencies_api_create_and_delete(alice, squad):
    a = ServiceFactory(slug="a", owner=squad)
    ServiceFactory(slug="b", owner=squad)
    ResourceFactory(slug="db1")
    c = client_for(alice)
    r1 = c.post("/api/v1/dependencies/", {"source": "a", "target_service": "b"}, format="json")
    assert r1.status_code == 201, r1.content
    r2 = c.post("/api/v1/dependencies/", {"source": "a", "target_resource": "db1"}, format="json")
    assert r2.status_code == 201
    assert (
        c.post(
            "/api/v1/dependencies/", {"source": "a", "target_service": "a"}, format="json"
        ).status_code
        == 400
    )
    assert c.post("/api/v1/dependencies/", {"source": "a"}, format="json").status_code == 400
    assert a.dependencies.count() == 2
    assert c.delete(f"/api/v1/dependencies/{r1.json()['id']}/").status_code == 204
    assert a.dependencies.count() == 1


def test_scorecard_levels(alice, squad, monkeypatch):
    from squads import scorecards

    monkeypatch.setattr(scorecards.registry, "scorecards", [])  # the catalog's own rules only
    full = ServiceFactory(
        slug="full",
        owner=squad,
        description="d",
        repository_url="https://git/x",
        runbook_url="https://rb",
        oncall="pager",
        tier=1,
    )
    bare = ServiceFactory(slug="bare", owner=squad, description="", repository_url="")
    dep = ServiceFactory(
        slug="old",
        owner=squad,
        lifecycle="deprecated",
        description="d",
        repository_url="r",
        runbook_url="https://rb",
        oncall="x",
    )
    c = client_for(alice)
    assert c.get("/api/v1/services/full/scorecard/").json()["level"] == "gold"
    assert c.get("/api/v1/services/bare/scorecard/").json()["level"] is None
    Dependency.objects.create(source=full, target_service=dep)
    card = c.get("/api/v1/services/full/scorecard/").json()
    assert card["level"] == "silver"
    assert [r["passed"] for r in card["rules"] if r["key"] == "deps_not_deprecated"] == [False]
    listing = {
        r["service"]: r["level"]
        for r in c.get("/api/v1/scorecards/?owner=playback").json()["results"]
    }
    assert listing == {"bare": None, "full": "silver", "old": "gold"}
    assert bare.pk


def _make_services(n, squad):
    system = SystemFactory(slug="sys")
    objs = [
        Service(
            slug=f"svc-{i:05d}",
            name=f"Service {i}",
            owner=squad,
            system=system,
            description="x",
            tier=1 + i % 3,
        )
        for i in range(n)
    ]
    Service.objects.bulk_create(objs)


@pytest.mark.parametrize("path", ["/catalog/", "/api/v1/services/"])
@override_settings(CATALOG_CACHE_SECONDS=0)  # the work behind a cache miss
def test_list_query_count_is_constant_in_catalog_size(alice, squad, path):
    MembershipFactory(person=PersonFactory(slug="lead2"), squad=squad, role="lead")
    c = client_for(alice)
    _make_services(10, squad)
    c.get(path)  # warm caches (session, content types)
    with CaptureQueriesContext(connection) as small:
        assert c.get(path).status_code == 200
    _make_services_more(990, squad)
    with CaptureQueriesContext(connection) as big:
        assert c.get(path).status_code == 200
    assert len(big) == len(small), [q["sql"][:120] for q in big.captured_queries]


def _make_services_more(n, squad):
    from squads.models import System

    system = System.objects.get(slug="sys")
    Service.objects.bulk_create(
        [
            Service(slug=f"more-{i:05d}", name=f"More {i}", owner=squad, system=system, tier=2)
            for i in range(n)
        ]
    )


def test_service_page_query_count_does_not_grow_with_dependencies(alice, squad):
    c = client_for(alice)
    svc = ServiceFactory(slug="hub", owner=squad)
    for i in range(2):
        DependencyFactory(source=svc, target_service=ServiceFactory(slug=f"up{i}", owner=squad))
        DependencyFactory(source=ServiceFactory(slug=f"down{i}", owner=squad), target_service=svc)
    c.get("/services/hub/")
    with CaptureQueriesContext(connection) as few:
        assert c.get("/services/hub/").status_code == 200
    for i in range(2, 40):
        DependencyFactory(
            source=svc,
            target_service=ServiceFactory(slug=f"up{i}", owner=SquadFactory(slug=f"sq{i}")),
        )
        DependencyFactory(source=ServiceFactory(slug=f"down{i}", owner=squad), target_service=svc)
    DependencyFactory(source=svc, target_service=None, target_resource=ResourceFactory(slug="pg"))
    with CaptureQueriesContext(connection) as many:
        resp = c.get("/services/hub/")
    assert resp.status_code == 200
    assert b"up39" in resp.content and b"down39" in resp.content
    assert len(many) == len(few), [q["sql"][:120] for q in many.captured_queries]


def test_bad_page_numbers_are_400_with_the_field(alice, squad):
    ServiceFactory(slug="only-one", owner=squad)
    c = client_for(alice)
    for page in ("0", "-3", "abc", "99"):
        resp = c.get(f"/api/v1/services/?page={page}")
        assert resp.status_code == 400, page
        assert "page" in resp.json()["errors"]


def test_api_search_is_ordered_by_relevance_unless_ordering_is_given(alice, squad):
    ServiceFactory(slug="alpha", name="Alpha", description="Mentions a playlist once", owner=squad)
    ServiceFactory(slug="zeta", name="Playlist Zeta", description="Playlist editor", owner=squad)
    ServiceFactory(slug="beta", name="Beta", description="Nothing relevant", owner=squad)
    c = client_for(alice)

    def slugs(q):
        return [r["slug"] for r in c.get(f"/api/v1/services/?{q}").json()["results"]]

    assert slugs("search=playlist") == ["zeta", "alpha"]  # name match ranks first
    assert slugs("q=playlist") == ["zeta", "alpha"]
    assert slugs("search=playlist&ordering=name") == ["alpha", "zeta"]
    assert slugs("search=+") == ["alpha", "beta", "zeta"]  # blank search: default order
