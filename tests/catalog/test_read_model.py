"""The stitched read form (squads/stitch.py) is never stale: after every way a row can change
(save, delete and its cascades, many-to-many changes, ``QuerySet.update()``, ``bulk_update``,
a Backstage import, a dependency's lifecycle, a pipeline run finishing, an alert firing, a
lead joining), the API list, detail, search and scorecard read right after show the change.
And the hand-built documents equal what the DRF serializers return."""

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from monitoring.models import Alert, AlertRule
from pipelines.models import PipelineRun, RunStatus
from portal.actors import Actor
from squads import backstage, scorecards, stitch
from squads.api.serializers import ServiceListSerializer, ServiceSerializer
from squads.models import Dependency, Membership, Service, ServiceView, Squad, Tag
from tests.conftest import client_for
from tests.factories import (
    ApiFactory,
    DependencyFactory,
    PersonFactory,
    ResourceFactory,
    ServiceFactory,
    SquadFactory,
    SystemFactory,
    TribeFactory,
)


@pytest.fixture
def reader(charlie):
    c = client_for(charlie)

    class Reader:
        def detail(self, slug):
            resp = c.get(f"/api/v1/services/{slug}/")
            assert resp.status_code == 200, resp.content
            return resp.json()

        def row(self, slug, **filters):
            resp = c.get("/api/v1/services/", {"page_size": 500, **filters})
            assert resp.status_code == 200, resp.content
            return {r["slug"]: r for r in resp.json()["results"]}.get(slug)

        def found(self, term):
            resp = c.get("/api/v1/services/", {"search": term})
            assert resp.status_code == 200, resp.content
            return [r["slug"] for r in resp.json()["results"]]

        def rule(self, slug, key):
            resp = c.get(f"/api/v1/services/{slug}/scorecard/")
            assert resp.status_code == 200, resp.content
            return {r["key"]: r["passed"] for r in resp.json()["rules"]}[key]

        def facet(self, name, **filters):
            resp = c.get("/api/v1/services/facets/", {"facet": name, **filters})
            assert resp.status_code == 200, resp.content
            return {f["value"]: f["count"] for f in resp.json()["facets"][name]}

    return Reader()


def _live(service):
    """The document the serializers would build from the database right now."""
    service = stitch.services_for([service.pk]).get()
    cards = {service.pk: scorecards.evaluate_one(service)}
    return ServiceSerializer(service, context={"scorecards": cards}).data


def test_documents_equal_the_serializers(db):
    squad = SquadFactory(slug="core", tribe=TribeFactory(slug="platform"))
    target = ServiceFactory(slug="target", owner=squad, lifecycle="deprecated")
    s = ServiceFactory(
        slug="full",
        owner=squad,
        system=SystemFactory(slug="sys"),
        tier=1,
        description="Everything set",
        repository_url="https://git.example/full",
        runbook_url="https://runbooks.example/full",
        oncall="pager",
        links=[{"url": "https://a.example", "title": "A", "extra": "dropped"}, "https://b.example"],
        annotations={"a": "1", "b": None, "c": 3},
        metrics_urls=["http://127.0.0.1:9/metrics"],
        webhook_secret="hidden",
        lifecycle_raw="sunsetting",
        lifecycle="deprecated",
    )
    s.tags.set([Tag.objects.create(name="go"), Tag.objects.create(name="alpha")])
    s.provides_apis.set([ApiFactory(slug="full-api")])
    s.consumes_apis.set([ApiFactory(slug="other-api")])
    DependencyFactory(source=s, target_service=target)
    DependencyFactory(source=s, target_service=None, target_resource=ResourceFactory(slug="db"))
    DependencyFactory(source=ServiceFactory(slug="user", owner=squad), target_service=s)
    bare = ServiceFactory(slug="bare", owner=None, description="")
    for service in (s, target, bare):
        view = ServiceView.objects.get(pk=service.pk)
        assert view.detail == _live(service)
        listed = stitch.services_for([service.pk]).get()
        cards = {listed.pk: scorecards.evaluate_one(listed)}
        assert view.row == ServiceListSerializer(listed, context={"scorecards": cards}).data
        assert view.scorecard == cards[listed.pk].as_dict()
    assert "hidden" not in str(ServiceView.objects.get(pk=s.pk).detail)


def test_every_kind_of_write_is_read_back_at_once(reader, squad, other_squad):
    dep = ServiceFactory(slug="dep", owner=other_squad, lifecycle="production")
    svc = ServiceFactory(slug="svc", owner=squad, description="plain words", tier=1)
    DependencyFactory(source=svc, target_service=dep)
    assert reader.detail("svc")["dependencies"][0]["slug"] == "dep"
    assert reader.detail("dep")["dependents"] == ["svc"]
    assert reader.rule("svc", "deps_not_deprecated") is True

    # save()
    svc.description = "royaltyledger reconciliation"
    svc.save()
    assert reader.detail("svc")["description"] == "royaltyledger reconciliation"
    assert reader.found("royaltyledger") == ["svc"]
    assert reader.row("svc")["description"] == "royaltyledger reconciliation"

    # a dependency's lifecycle, through QuerySet.update(): its dependents are re-stitched
    Service.objects.filter(slug="dep").update(lifecycle="deprecated")
    assert reader.detail("dep")["lifecycle"] == "deprecated"
    assert reader.rule("svc", "deps_not_deprecated") is False
    assert reader.row("dep", lifecycle="deprecated") is not None
    assert reader.facet("lifecycle")["deprecated"] == 1
    # ...and back through save()
    dep.refresh_from_db()
    dep.lifecycle = "production"
    dep.save()
    assert reader.rule("svc", "deps_not_deprecated") is True

    # bulk_update()
    svc.refresh_from_db()
    svc.tier = 2
    Service.objects.bulk_update([svc], ["tier"])
    assert reader.detail("svc")["tier"] == 2 and reader.row("svc", tier=2) is not None

    # many-to-many, both sides
    svc.tags.add(Tag.objects.create(name="lyricsqueue"))
    assert reader.detail("svc")["tags"] == ["lyricsqueue"]
    assert reader.found("lyricsqueue") == ["svc"]
    Tag.objects.get(name="lyricsqueue").services.clear()
    assert reader.detail("svc")["tags"] == []
    api = ApiFactory(slug="svc-api")
    api.providers.add(svc)
    assert reader.detail("svc")["provides_apis"] == ["svc-api"]
    api.delete()  # the through rows go by cascade
    assert reader.detail("svc")["provides_apis"] == []

    # a dependency removed: both ends
    Dependency.objects.filter(source=svc).delete()
    assert reader.detail("svc")["dependencies"] == [] and reader.detail("dep")["dependents"] == []


def test_owner_team_lead_and_deletes(reader, squad, other_squad):
    svc = ServiceFactory(slug="svc", owner=squad, tier=1)
    assert reader.row("svc", tribe=squad.tribe.slug) is not None
    assert reader.rule("svc", "tier1_lead") is False
    lead = Membership.objects.create(
        person=PersonFactory(slug="lea"), squad=squad, role=Membership.Role.LEAD
    )
    assert reader.rule("svc", "tier1_lead") is True
    Membership.objects.filter(pk=lead.pk).update(role=Membership.Role.MEMBER)
    assert reader.rule("svc", "tier1_lead") is False

    moved = TribeFactory(slug="moved")
    Squad.objects.filter(pk=squad.pk).update(tribe=moved)
    assert reader.row("svc", tribe="moved") is not None

    Service.objects.filter(pk=svc.pk).update(owner=other_squad)
    assert reader.row("svc", owner=other_squad.slug)["owner"] == other_squad.slug
    other_squad.delete()  # SET NULL on the service, no signal of its own
    assert reader.detail("svc")["owner"] is None
    assert reader.facet("owner").get("") == 1

    svc.delete()
    assert not ServiceView.objects.filter(slug="svc").exists()
    assert client_for_any().get("/api/v1/services/svc/").status_code == 404


def client_for_any():
    from tests.factories import UserFactory

    return client_for(UserFactory())


def test_a_run_finishing_and_an_alert_firing(reader, squad, monkeypatch):
    svc = ServiceFactory(slug="svc", owner=squad, type="service")
    ServiceFactory(slug="other", owner=squad)
    assert reader.rule("svc", "default_branch_green") is False
    run = PipelineRun.objects.create(service=svc, ref=svc.default_branch, number=1)
    stitched = []
    real = stitch._stitch_cards  # a run is an input of the pipelines rules alone
    monkeypatch.setattr(
        stitch, "_stitch_cards", lambda ids, keys: (stitched.append(list(ids)), real(ids, keys))
    )
    PipelineRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
        status=RunStatus.SUCCEEDED
    )
    assert reader.rule("svc", "default_branch_green") is True
    assert stitched == [[svc.pk]]  # the run's service only
    run.status = RunStatus.FAILED
    run.save(update_fields=["status"])
    assert reader.rule("svc", "default_branch_green") is False
    # heartbeats are no input: no stitching
    with CaptureQueriesContext(connection) as ctx:
        PipelineRun.objects.filter(pk=run.pk).update(heartbeat_at=run.created_at)
    assert not any("squads_serviceview" in q["sql"] for q in ctx.captured_queries)

    rule = AlertRule.objects.create(service=svc, name="errors", threshold=1)
    assert reader.rule("svc", "has_alert_rules") is True
    alert = Alert.objects.create(rule=rule, service=svc, severity="critical")
    assert reader.rule("svc", "no_critical_alert") is True
    Alert.objects.filter(pk=alert.pk).update(state=Alert.State.FIRING)
    assert reader.rule("svc", "no_critical_alert") is False


def test_a_backstage_import_is_read_back_at_once(reader, admin_user, squad):
    doc = (
        "apiVersion: backstage.io/v1alpha1\nkind: Component\n"
        "metadata: {{name: imported, description: {d}}}\n"
        "spec: {{type: service, lifecycle: {lc}, owner: {o}}}\n"
    )
    consumer = (
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: consumer}\n"
        f"spec: {{type: service, lifecycle: production, owner: {squad.slug},"
        " dependsOn: [component:imported]}\n"
    )
    first = doc.format(d="podcastcache transcoder", lc="production", o=squad.slug)
    backstage.import_catalog([("a.yaml", first + "---\n" + consumer)], Actor(user=admin_user))
    assert reader.found("podcastcache") == ["imported"]
    assert reader.detail("imported")["dependents"] == ["consumer"]
    third = (
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: late}\n"
        f"spec: {{type: service, lifecycle: production, owner: {squad.slug},"
        " dependsOn: [component:imported]}\n"
    )
    backstage.import_catalog([("b.yaml", third)], Actor(user=admin_user))  # imported: unchanged
    assert reader.detail("imported")["dependents"] == ["consumer", "late"]
    assert reader.rule("consumer", "deps_not_deprecated") is True
    second = doc.format(d="audiocdn mirror", lc="deprecated", o=squad.slug)
    backstage.import_catalog([("a.yaml", second + "---\n" + consumer)], Actor(user=admin_user))
    assert reader.found("podcastcache") == [] and reader.found("audiocdn") == ["imported"]
    assert reader.rule("consumer", "deps_not_deprecated") is False  # a dependency's lifecycle


def test_search_ranks_over_the_stored_vector(reader, squad):
    ServiceFactory(slug="a-ledger", name="Ledger", description="ledger ledger ledger", owner=squad)
    ServiceFactory(
        slug="b-other", name="Other", description="mentions the ledger once", owner=squad
    )
    ServiceFactory(slug="c-none", name="Unrelated", owner=squad)
    assert reader.found("ledger") == ["a-ledger", "b-other"]
    assert reader.found("a-ledg") == ["a-ledger"]  # substring of the slug
    assert reader.facet("owner", search="ledger") == {squad.slug: 2}


def test_raw_sql_writes_are_rebuilt_by_restitch_catalog(reader, squad):
    from django.core.management import call_command

    ServiceFactory(slug="raw", owner=squad, description="before")
    with connection.cursor() as cur:  # outside Backline: no signal
        cur.execute("UPDATE squads_service SET description = 'after' WHERE slug = 'raw'")
    assert reader.detail("raw")["description"] == "before"
    call_command("restitch_catalog")
    assert reader.detail("raw")["description"] == "after"


def test_unknown_facet_is_a_400_naming_it(charlie):
    resp = client_for(charlie).get("/api/v1/services/facets/", {"facet": ["lifecycle", "colour"]})
    assert resp.status_code == 400
    assert "colour" in str(resp.json())


def test_facets_count_every_value_from_one_query(charlie, squad, other_squad):
    for i, (owner, lifecycle) in enumerate(
        [(squad, "production"), (squad, "production"), (other_squad, "deprecated")]
    ):
        ServiceFactory(slug=f"f-{i}", owner=owner, lifecycle=lifecycle)
    c = client_for(charlie)
    with CaptureQueriesContext(connection) as ctx:
        resp = c.get("/api/v1/services/facets/", {"facet": ["lifecycle", "owner"]})
    body = resp.json()
    assert body["count"] == 3
    assert body["facets"]["lifecycle"] == [
        {"value": "production", "count": 2},
        {"value": "deprecated", "count": 1},
    ]
    assert body["facets"]["owner"] == [
        {"value": squad.slug, "count": 2},
        {"value": other_squad.slug, "count": 1},
    ]
    assert sum("GROUPING SETS" in q["sql"] for q in ctx.captured_queries) == 1
    filtered = c.get("/api/v1/services/facets/", {"facet": "owner", "lifecycle": "deprecated"})
    assert filtered.json() == {
        "count": 1,
        "facets": {"owner": [{"value": other_squad.slug, "count": 1}]},
    }


def test_stitched_documents_never_hold_url_credentials(reader, squad):
    """The stitched detail and row show a repository URL's credentials as the serializers do
    (``https://****@host/…``), and the stored read form never holds them."""
    secret = "ghp_stitchedTokenValue42"
    ServiceFactory(
        slug="creds", owner=squad, repository_url=f"https://bot:{secret}@git.example.com/a/b.git"
    )
    assert reader.detail("creds")["repository_url"] == "https://****@git.example.com/a/b.git"
    assert reader.row("creds")["repository_url"] == "https://****@git.example.com/a/b.git"
    with connection.cursor() as cur:
        cur.execute(
            "SELECT row::text || detail::text FROM squads_serviceview WHERE slug = %s", ["creds"]
        )
        (stored,) = cur.fetchone()
    assert secret not in stored


@override_settings(CATALOG_CACHE_SECONDS=0)  # the HTML pages' own read path, no cached layer
def test_html_pages_read_the_stitched_form_at_once(charlie, squad):
    """The catalog page and the service page (read from the stitched form since issue 16)
    show a run finishing, a scorecard change and a squad's new name right after the write."""
    c = client_for(charlie)
    svc = ServiceFactory(slug="svc", name="Svc", owner=squad, type="service")

    def catalog_row():
        html = c.get("/catalog/").content.decode()
        return html.split('href="/services/svc/"', 1)[1].split("</tr>", 1)[0]

    def scorecard_card():
        html = c.get("/services/svc/").content.decode()
        return html.split('id="scorecard"', 1)[1].split("</ul>", 1)[0]

    assert "no runs" in catalog_row()
    run = PipelineRun.objects.create(service=svc, ref=svc.default_branch, number=1)
    before = scorecard_card()
    PipelineRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
        status=RunStatus.SUCCEEDED
    )
    assert "badge-succeeded" in catalog_row()
    after = scorecard_card()
    assert after != before and after.count("✓") == before.count("✓") + 1
    card = ServiceView.objects.get(pk=svc.pk).scorecard
    assert f"{card['percent']}%" in catalog_row()

    Squad.objects.filter(pk=squad.pk).update(name="Renamed Squad")
    assert "Renamed Squad" in catalog_row()
    svc.description = "royaltyledger reconciliation"
    svc.save()
    assert (
        "royaltyledger reconciliation"
        in c.get("/catalog/", {"q": "royaltyledger"}).content.decode()
    )
    assert "royaltyledger reconciliation" in c.get("/services/svc/").content.decode()


def test_a_search_is_one_query_and_its_count(charlie, squad):
    """The candidates (words, tag, substrings) are a subquery of the page's query: the read
    form is queried twice per search (the page and its count), not once per way of matching."""
    ServiceFactory(slug="a-ledger", name="Ledger", description="ledger", owner=squad)
    ServiceFactory(slug="svc-0042", name="Numbered", owner=squad)
    c = client_for(charlie)
    for term in ("ledger", "svc-004"):  # by words; by a substring of the slug
        c.get("/api/v1/services/", {"search": term})
        with CaptureQueriesContext(connection) as ctx:
            body = c.get("/api/v1/services/", {"search": term}).json()
        assert body["count"] == 1 and len(body["results"]) == 1
        reads = [q["sql"] for q in ctx.captured_queries if "squads_serviceview" in q["sql"]]
        assert len(reads) == 2, reads


def test_gin_pending_lists_are_short_and_the_heap_narrow(db):
    """Migration 0009: without autovacuum a GIN index's pending list (scanned by every
    search) stays under 256 kB, and the read form's documents live out of line."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT relname, reloptions FROM pg_class WHERE relname IN "
            "('squads_sview_document_gin', 'squads_serviceview')"
        )
        options = dict(cur.fetchall())
    assert "gin_pending_list_limit=256" in options["squads_sview_document_gin"]
    assert "toast_tuple_target=128" in options["squads_serviceview"]


def test_catalog_page_names_follow_every_rename_at_once(charlie):
    """The owner's, tribe's and system's names are stored with the read form (the catalog page
    reads no name subquery): each kind of rename and move re-stitches the services it shows on,
    read back from the page right after the write."""
    from squads.models import System, Tribe

    c = client_for(charlie)
    tribe, other_tribe = TribeFactory(slug="t1", name="Tribe One"), TribeFactory(slug="t2")
    squad = SquadFactory(slug="sq", name="Squad Before", tribe=tribe)
    system = SystemFactory(slug="sys", name="System Before")
    svc = ServiceFactory(slug="svc", owner=squad, system=system)
    ServiceFactory(slug="bystander", owner=SquadFactory(slug="other"), system=None)

    def row():
        html = c.get("/catalog/").content.decode()
        return html.split('href="/services/svc/"', 1)[1].split("</tr>", 1)[0]

    def stored():
        return ServiceView.objects.values_list("owner_name", "tribe_name", "system_name").get(
            pk=svc.pk
        )

    assert stored() == ("Squad Before", "Tribe One", "System Before")
    squad.name = "Squad Saved"
    squad.save()
    assert "Squad Saved" in row()
    Squad.objects.filter(pk=squad.pk).update(name="Squad <Updated>")
    assert "Squad &lt;Updated&gt;" in row()
    tribe.name = "Tribe Saved"
    tribe.save(update_fields=["name"])
    assert "Tribe Saved" in row()
    Tribe.objects.filter(pk=tribe.pk).update(name="Tribe Updated")
    assert "Tribe Updated" in row()
    Squad.objects.filter(pk=squad.pk).update(tribe=other_tribe)
    assert other_tribe.name in row() and "Tribe Updated" not in row()
    System.objects.filter(pk=system.pk).update(name="System Updated")
    assert "System Updated" in row()
    Service.objects.filter(pk=svc.pk).update(system=None, owner=None)
    assert stored() == ("", "", "")
    assert "no owner" in row()
    # every read form agrees with the live names
    for view in ServiceView.objects.select_related("service__owner__tribe", "service__system"):
        s = view.service
        assert view.owner_name == (s.owner.name if s.owner else "")
        assert view.tribe_name == (s.owner.tribe.name if s.owner and s.owner.tribe else "")
        assert view.system_name == (s.system.name if s.system else "")
