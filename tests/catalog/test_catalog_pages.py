from django.test import override_settings

from squads.models import Service
from tests.factories import DependencyFactory, ServiceFactory, SquadFactory


def test_pages_need_login(client, db):
    for path in ["/", "/catalog/", "/squads/", "/audit/", "/tokens/"]:
        resp = client.get(path)
        assert resp.status_code == 302 and resp["Location"].startswith("/login/"), path


def test_catalog_htmx_returns_fragment_and_full_page_otherwise(client, alice, squad, other_squad):
    ServiceFactory(slug="playback-api", name="Playback API", owner=squad)
    ServiceFactory(slug="search-api", name="Search API", owner=other_squad)
    client.force_login(alice)
    full = client.get("/catalog/?owner=search")
    assert (
        b"<html" in full.content
        and b"Search API" in full.content
        and b"Playback API" not in full.content
    )
    frag = client.get("/catalog/?q=playback", HTTP_HX_REQUEST="true")
    assert b"<html" not in frag.content
    assert b"Playback API" in frag.content and b"Search API" not in frag.content


def test_service_page_shows_owner_graph_and_scorecard(client, alice, squad):
    svc = ServiceFactory(slug="playback-api", name="Playback API", owner=squad)
    DependencyFactory(
        source=svc,
        target_service=ServiceFactory(
            slug="audio-cdn", name="Audio CDN", owner=SquadFactory(slug="edge")
        ),
    )
    DependencyFactory(
        source=ServiceFactory(slug="web-player", name="Web player", owner=squad), target_service=svc
    )
    client.force_login(alice)
    html = client.get("/services/playback-api/").content.decode()
    assert 'aria-label="Dependency graph of Playback API"' in html
    assert 'href="/services/audio-cdn/"' in html and 'href="/services/web-player/"' in html
    assert "Scorecard" in html and "Playback" in html
    assert ">Edit<" in html  # alice is a member


def test_edit_service_form_by_member_and_refused_for_others(client, alice, bob, squad):
    ServiceFactory(slug="playback-api", owner=squad)
    client.force_login(bob)
    assert client.get("/services/playback-api/edit/").status_code == 403
    client.force_login(alice)
    resp = client.post(
        "/services/playback-api/edit/",
        {
            "name": "Playback API",
            "description": "Streams audio",
            "owner": squad.pk,
            "type": "service",
            "lifecycle": "production",
            "tier": 1,
            "repository_url": "",
            "default_branch": "main",
            "runbook_url": "",
            "oncall": "pager-playback",
            "tags_text": "audio, core",
        },
    )
    assert resp.status_code == 302
    svc = Service.objects.get(slug="playback-api")
    assert svc.tier == 1 and svc.oncall == "pager-playback"
    assert sorted(svc.tags.values_list("name", flat=True)) == ["audio", "core"]


def test_squad_and_my_squads_pages(client, alice, squad):
    ServiceFactory(slug="playback-api", name="Playback API", owner=squad)
    client.force_login(alice)
    html = client.get("/squads/playback/").content.decode()
    assert "Playback API" in html and "Scorecard roll-up" in html and "Alice" in html
    mine = client.get("/squads/mine/").content.decode()
    assert "Playback" in mine and "Lead" in mine
    assert client.get("/squads/").status_code == 200
    assert client.get(f"/tribes/{squad.tribe.slug}/").status_code == 200


def test_catalog_filters_are_selects_up_to_the_limit_then_text_fields(
    client, alice, monkeypatch, db
):
    """A filter lists its choices while they number at most FILTER_SELECT_MAX (squads, tribes
    with a squad, systems, types, tags in use), and is a text field above it: every limit
    around each kind's number of choices."""
    from squads.cache import CHOICES
    from squads.models import Squad, System, Tag, Tribe
    from squads.views import catalog
    from tests.factories import SystemFactory, TribeFactory

    client.force_login(alice)
    tribes = [TribeFactory(slug=f"tribe-{i}") for i in range(4)]  # the last has no squad
    squads = [SquadFactory(slug=f"sq-{i}", tribe=tribes[i % 3]) for i in range(5)]
    for i in range(2):
        SystemFactory(slug=f"sys-{i}")
    for i, kind in enumerate(("service", "library", "website")):
        svc = ServiceFactory(slug=f"svc-{i}", owner=squads[i], type=kind)
        svc.tags.add(Tag.objects.create(name=f"used-{i}"))
    Tag.objects.create(name="unused")
    number = {
        "owner": Squad.objects.count(),
        "tribe": Tribe.objects.filter(squads__isnull=False).distinct().count(),
        "system": System.objects.count(),
        "type": Service.objects.values("type").distinct().count(),
        "tag": Tag.objects.filter(services__isnull=False).distinct().count(),
    }

    def fields():
        html = client.get("/catalog/").content.decode()
        return {name: "select" if f'<select name="{name}"' in html else "text" for name in number}

    for limit in range(0, max(number.values()) + 2):  # the choices computed for each
        monkeypatch.setattr(catalog, "FILTER_SELECT_MAX", limit)
        CHOICES.bump()
        expected = {k: "select" if n <= limit else "text" for k, n in number.items()}
        assert fields() == expected, (limit, number)


@override_settings(CATALOG_CACHE_SECONDS=0)
def test_the_unfiltered_page_statement_renders_what_the_orm_path_renders(client, alice, squad):
    """The unfiltered catalog in name order is one prepared statement (``PAGE_SQL``: rows,
    scorecard cell fields, stored total); ``?sort=name`` reads the same rows through the ORM.
    Both render the same table, pages and count: scorecard cells (level, checks passed), an
    emptied scorecard's blank cell and each last-run cell."""
    from pipelines.models import PipelineRun
    from squads.models import ServiceView
    from squads.views import catalog

    client.force_login(alice)
    svcs = [
        ServiceFactory(slug=f"svc-{i:02d}", name=f"Svc {i:02d}", owner=squad)
        for i in range(catalog.PAGE_SIZE + 3)
    ]
    PipelineRun.objects.create(service=svcs[1], ref="main", number=1, status="failed")
    PipelineRun.objects.create(service=svcs[1], ref="main", number=2, status="succeeded")
    ServiceView.objects.filter(pk=svcs[2].pk).update(scorecard={})

    def table(query):
        html = client.get("/catalog/", query, HTTP_HX_REQUEST="true").content.decode()
        return html.split("<tbody>", 1)[1]

    for page in ("1", "2"):
        lean, orm = table({"page": page}), table({"page": page, "sort": "name"})
        assert lean == orm.replace("sort=name&amp;", ""), page
    first = table({"page": "1"})
    rows = {r.split('href="/services/', 1)[1].split("/", 1)[0]: r for r in first.split("<tr")[1:]}
    card = ServiceView.objects.get(pk=svcs[0].pk).scorecard
    assert f"{card['passed']} of {card['applicable']} checks pass" in rows["svc-00"]
    assert f"{card['percent']}%" in rows["svc-00"]
    assert "checks pass" not in rows["svc-02"]  # no scorecard: an empty cell
    assert "badge-succeeded" in rows["svc-01"] and "badge-failed" not in rows["svc-01"]
    assert "no runs" in rows["svc-00"]
    assert f"{len(svcs)} services" in first
    assert "Svc 25" in table({"page": "2"}) and "Svc 25" not in first
    assert "No services match" not in table({"page": "999"})  # out of range: the last page
