"""The service page's one-statement read (``squads.views.service_data``) gives what the ORM's
queries give: the same instances' fields, relations, order and page, for a service with every
kind of neighbour (services and a resource upstream, dependents, APIs both ways with and without
owners, people, tribe, system and domain), for one with none, and for a missing one."""

import pytest
from django.db import connection
from django.http import Http404
from django.test.utils import CaptureQueriesContext

from squads.models import Domain, Membership, ServiceView, Tag
from squads.views import service_data
from tests.factories import (
    ApiFactory,
    DependencyFactory,
    MembershipFactory,
    PersonFactory,
    ResourceFactory,
    ServiceFactory,
    SquadFactory,
    SystemFactory,
)


def _summary(page):
    s = page.service
    return {
        "service": (s.pk, s.slug, s.name, s.lifecycle_label, s.tier, s.type, s.links, s.oncall),
        "owner": (s.owner.slug, s.owner.name, s.owner.tribe.name if s.owner.tribe else None)
        if s.owner
        else None,
        "system": (s.system.name, s.system.domain.name if s.system.domain else None)
        if s.system
        else None,
        "tags": page.tags,
        "scorecard": page.scorecard,
        "deps": [
            (
                d.target_service.slug if d.target_service else None,
                d.target_service.owner.name if d.target_service and d.target_service.owner else "",
                d.target_service.lifecycle if d.target_service else None,
                (d.target_resource.name, d.target_resource.type) if d.target_resource else None,
            )
            for d in page.deps
        ],
        "dependents": [
            (d.source.slug, d.source.owner.name if d.source.owner else "") for d in page.dependents
        ],
        "provides": [(a.slug, a.name, a.type) for a in page.provides],
        "consumes": [(a.slug, a.owner.name if a.owner else "") for a in page.consumes],
        "members": [(m.person.name, m.get_role_display(), m.person.user_id) for m in page.members],
    }


@pytest.fixture
def busy(squad):
    system = SystemFactory(slug="audio", name="Audio")
    system.domain = Domain.objects.create(slug="media", name="Media")
    system.save()
    svc = ServiceFactory(
        slug="playback-api",
        name="Playback API",
        owner=squad,
        system=system,
        lifecycle="experimental",
        links=[{"url": "https://runbooks.example/p", "title": "Runbook"}],
        oncall="playback-oncall",
    )
    svc.tags.add(*[Tag.objects.create(name=n) for n in ("b", "a")])
    edge = SquadFactory(slug="edge", name="Edge")
    DependencyFactory(
        source=svc, target_service=ServiceFactory(slug="zeta", name="Zeta", owner=edge)
    )
    DependencyFactory(
        source=svc, target_service=ServiceFactory(slug="alpha", name="Alpha", owner=None)
    )
    DependencyFactory(
        source=svc, target_service=None, target_resource=ResourceFactory(name="pg", type="database")
    )
    DependencyFactory(source=ServiceFactory(slug="web", name="Web", owner=edge), target_service=svc)
    DependencyFactory(source=ServiceFactory(slug="app", name="App", owner=None), target_service=svc)
    svc.provides_apis.add(ApiFactory(slug="playback", name="Playback", type="grpc", owner=squad))
    svc.consumes_apis.add(
        ApiFactory(slug="catalog", name="Catalog", owner=edge), ApiFactory(slug="free", name="Free")
    )
    MembershipFactory(squad=squad, person=PersonFactory(name="Zed"), role=Membership.Role.MEMBER)
    MembershipFactory(squad=squad, person=PersonFactory(name="Amy"), role=Membership.Role.MEMBER)
    return svc


@pytest.mark.django_db
def test_one_statement_gives_what_the_orm_gives(busy):
    with CaptureQueriesContext(connection) as ctx:
        page = service_data.service_page("playback-api")
    assert len(ctx.captured_queries) == (1 if connection.vendor == "postgresql" else 5)
    got = _summary(page)
    assert got == _summary(service_data._service_page_orm("playback-api"))
    assert [d[0] for d in got["deps"]] == ["alpha", "zeta", None]  # by name, resources last
    assert got["deps"][0][1] == "" and got["deps"][1][1] == "Edge"
    assert got["dependents"] == [("app", ""), ("web", "Edge")]
    assert got["consumes"] == [("catalog", "Edge"), ("free", "")]
    assert [m[0] for m in got["members"]][-2:] == ["Amy", "Zed"]
    assert got["system"] == ("Audio", "Media") and got["owner"][2] is not None
    # a field the page does not read is deferred, loaded on access (as the ORM would)
    busy.annotations = {"backstage.io/techdocs-ref": "dir:."}
    busy.save(update_fields=["annotations"])
    assert "annotations" in page.service.get_deferred_fields()
    assert page.service.annotations == {"backstage.io/techdocs-ref": "dir:."}


@pytest.mark.django_db
def test_a_lone_service_and_a_missing_one(squad):
    ServiceFactory(slug="lone", name="Lone", owner=None)
    page = service_data.service_page("lone")
    assert _summary(page) == _summary(service_data._service_page_orm("lone"))
    assert page.service.owner is None and page.deps == page.dependents == page.members == []
    with pytest.raises(Http404):
        service_data.service_page("nope")


@pytest.mark.django_db
def test_a_service_without_its_read_form_is_stitched_on_first_view(busy):
    ServiceView.objects.filter(service_id=busy.pk).delete()
    page = service_data.service_page("playback-api")
    assert ServiceView.objects.filter(service_id=busy.pk).exists()
    assert page.tags == ["a", "b"] and len(page.deps) == 3


@pytest.mark.django_db
def test_the_page_renders_every_neighbour(client, alice, busy):
    client.force_login(alice)
    html = client.get("/services/playback-api/").content.decode()
    for text in (
        'href="/services/alpha/"',
        'href="/services/zeta/"',
        'href="/services/web/"',
        "pg</td>",
        'Playback</a> <span class="badge">grpc</span>',
        'Catalog</a> <span class="muted small">Edge</span>',
        "Amy",
        "Media",
        "playback-oncall",
        'href="https://runbooks.example/p"',
    ):
        assert text in html, text
    assert 'href="/services/playback-api/edit/"' in html  # alice leads the owning squad


def _count(client, query=""):
    html = client.get(f"/catalog/{query}", HTTP_HX_REQUEST="true").content.decode()
    return int(html.split('<span id="result-count">')[1].split(" ")[0])


@pytest.mark.django_db(transaction=True)
def test_unfiltered_catalog_count_is_the_stored_total_and_never_stale(client, alice, squad):
    """The unfiltered catalog page reads the trigger-kept total (no count of every row): after
    ORM saves, a ``QuerySet.update()`` and deletes it equals the rows there are,
    and an empty filter or a sort counts as no filter."""
    from django.test import override_settings

    from squads.models import Service

    client.force_login(alice)
    with override_settings(CATALOG_CACHE_SECONDS=0):
        for k in range(7):
            ServiceFactory(slug=f"svc-{k}", owner=squad)
        assert _count(client) == _count(client, "?owner=&sort=-tier") == 7
        with CaptureQueriesContext(connection) as ctx:
            _count(client, "?page=1")
        assert not any("COUNT(*)" in q["sql"].upper() for q in ctx.captured_queries)
        Service.objects.filter(slug__in=["svc-0", "svc-1"]).delete()
        Service.objects.filter(slug="svc-2").update(lifecycle="deprecated")
        assert _count(client) == Service.objects.count() == 5
        assert _count(client, "?lifecycle=deprecated") == 1  # filtered: counted


@pytest.mark.django_db
def test_catalog_rows_from_their_stored_parts_equal_rows_built_per_request(client, alice, squad):
    """The catalog page's rows come from the HTML parts stitched with the read form; a read
    form stitched before the parts existed (empty) renders the same page from its list row;
    a rename of the owner, an edit of a description with markup and a new tag reach the
    stored parts at once."""
    from django.test import override_settings

    from squads.models import Service, Tag

    system = SystemFactory(slug="audio", name="Audio <Systems>")
    for k in range(4):
        ServiceFactory(slug=f"svc-{k}", name=f"Svc {k}", owner=squad, system=system)
    ServiceFactory(slug="orphan", name="Orphan", owner=None, description="x" * 120)
    client.force_login(alice)

    def page():
        return client.get("/catalog/", HTTP_HX_REQUEST="true").content.decode()

    with override_settings(CATALOG_CACHE_SECONDS=0):
        stored = page()
        assert ServiceView.objects.filter(html_head="").count() == 0
        ServiceView.objects.update(html_head="", html_tail="")
        assert page() == stored
        assert "Audio &lt;Systems&gt;" in stored and "no owner" in stored and "…" in stored
        squad.name = "Playback & Co"
        squad.save()
        svc = Service.objects.get(slug="svc-1")
        svc.description = "Plays <b>audio</b>"
        svc.save()
        svc.tags.add(Tag.objects.create(name="edge&cdn"))
        after = page()
        assert "Playback &amp; Co" in after and "Plays &lt;b&gt;audio&lt;/b&gt;" in after
        assert '<span class="tag">edge&amp;cdn</span>' in after
        assert ServiceView.objects.get(service__slug="svc-1").html_head != ""
