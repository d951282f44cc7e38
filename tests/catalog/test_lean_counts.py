"""The lean list and facet reads count from the counts the read form's triggers keep
(``ServiceFacetCount``, migration 0014): after every kind of write those counts equal a scan
of the read form, and the lean answers that read them equal DRF's (which counts the rows)."""

import pytest
from django.db import connection
from django.db.models import Count
from django.test.utils import CaptureQueriesContext

from pipelines import services as pipeline_services
from pipelines.models import RunStatus
from portal.actors import Actor
from squads.models import Service
from tests.catalog import test_lean_reads as lean
from tests.factories import TribeFactory

pytestmark = pytest.mark.django_db(transaction=True)

catalog, bearer = lean.catalog, lean.bearer  # the fixtures: the same catalog and token
get, same = lean.get, lean.same

UNFILTERED_FACETS = (
    "/api/v1/services/facets/?facet=owner&facet=tribe&facet=system&facet=lifecycle"
    "&facet=tier&facet=type&facet=level"
)


def _scanned_facets():
    """Each facet's counts computed from the read form itself (what the triggers must keep)."""
    from squads.api.views import FACETS
    from squads.models import ServiceFacetCount, ServiceView

    scanned = {("*", ""): ServiceView.objects.count()}
    for facet, col in FACETS.items():
        for value, n in ServiceView.objects.values_list(col).annotate(n=Count("pk")):
            scanned[(facet, str(value))] = n
    stored = {
        (f, v): n for f, v, n in ServiceFacetCount.objects.values_list("facet", "value", "n") if n
    }
    return scanned, stored


def _doc_versions():
    """Each facet's (version, version of its stored answer) (``ServiceFacetDoc``)."""
    from squads.models import ServiceFacetDoc

    return dict(
        (f, (v, b))
        for f, v, b in ServiceFacetDoc.objects.values_list("facet", "version", "body_version")
    )


def test_unfiltered_facets_come_from_counts_kept_by_every_write(catalog, bearer, settings, squad):
    """The unfiltered facets are read from counts the read form's triggers keep: after every
    way a row can change (a save, ``QuerySet.update()``, a delete, a squad moving tribe, an
    import, a full re-stitch, a run finishing) they equal a scan of the read form, and the lean
    answer equals DRF's (which scans)."""
    from squads import stitch
    from squads.backstage import import_catalog

    def check():
        scanned, stored = _scanned_facets()
        assert stored == scanned
        same(UNFILTERED_FACETS, bearer, settings, lean=True)
        same("/api/v1/services/facets/", bearer, settings, lean=True)
        for path in COUNTED_LISTS:  # their counts are read from the same rows
            same(path, bearer, settings, lean=True)

    check()
    Service.objects.filter(slug="playback-api").update(lifecycle="deprecated", tier=3)
    check()
    web = Service.objects.get(slug="playback-web")
    web.type = "website"
    web.save()
    check()
    web.delete()
    check()
    squad.tribe = TribeFactory(slug="video")
    squad.save()
    check()
    doc = (
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: imported-one}\n"
        "spec: {type: library, lifecycle: experimental, owner: playback}\n"
    )
    import_catalog([("one.yaml", doc)], Actor.system("test", door="command"))
    check()
    stitch.restitch_all()
    check()
    service = Service.objects.get(slug="playback-api")
    run, _ = pipeline_services.trigger_run(
        service, actor=Actor.system("t"), ref=service.default_branch
    )
    versions = _doc_versions()
    assert pipeline_services.start_run(run.pk, worker="test:1") is not None
    assert pipeline_services.finish_run(run.pk, RunStatus.SUCCEEDED)
    assert _doc_versions() == versions  # no facet changed: every stored answer still valid
    check()
    scanned, _stored = _scanned_facets()
    assert scanned[("*", "")] == Service.objects.count() >= 3  # the test had rows to count


COUNTED_LISTS = [
    "/api/v1/services/?page_size=5",
    "/api/v1/services/?owner=playback&page_size=1",
    "/api/v1/services/?tribe=video",
    "/api/v1/services/?system=audio-stack",
    "/api/v1/services/?lifecycle=deprecated",
    "/api/v1/services/?tier=3",
    "/api/v1/services/?type=website",
]


def test_list_counts_come_from_stored_counts_with_at_most_one_facet_filter(
    catalog, bearer, settings
):
    """No filter, or one filter on a facet column: the list's count is the stored count of
    that value (``ServiceFacetCount``), not a count of the rows; a search or two filters count
    the rows they select. Both equal DRF's count (``test_lean_answers_equal_drf_answers``,
    and after every kind of write: ``COUNTED_LISTS`` above)."""
    searched = "/api/v1/services/?search=bulk"
    two = "/api/v1/services/?owner=far-away&tier=2"
    for path in [*COUNTED_LISTS, searched, two]:
        with CaptureQueriesContext(connection) as queries:
            assert get(path, bearer, settings)[0] == 200
        (sql,) = [q["sql"] for q in queries]
        assert ("squads_servicefacetcount" in sql) == (path not in (searched, two)), path
        assert ("COUNT(*)" in sql) == (path in (searched, two)), path


def test_unfiltered_facets_escape_and_order_values_as_drf_does(catalog, bearer, settings, squad):
    """The stored facets are assembled as JSON text in SQL: values with quotes, backslashes,
    control and non-ASCII characters come out as DRF encodes them, ties in byte order (the
    index the facets read along, migration 0016)."""
    from tests.factories import ServiceFactory

    for k, kind in enumerate(['say "hi"', "back\\slash", "tab\there", "Ünïcode", "Zeta", "alpha"]):
        ServiceFactory(slug=f"odd-{k}", owner=squad, type=kind)
    body = same(UNFILTERED_FACETS, bearer, settings, lean=True)[1]
    types = [v["value"] for v in body["facets"]["type"] if v["count"] == 1]
    assert types == sorted(types) and 'say "hi"' in types and "tab\there" in types


def _other_connection(settings):
    import psycopg

    db = settings.DATABASES["default"]
    return psycopg.connect(
        host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"]
    )


def test_stored_facet_answers_follow_writes_and_never_keep_a_stale_one(
    catalog, bearer, settings, squad, other_squad
):
    """Each facet's answer is stored by the read after a write changed that facet
    (``ServiceFacetDoc``, migration 0017): a write bumps the version of exactly the facets it
    changed; a read while another transaction holds an uncommitted change neither waits for it
    nor stores an answer that the commit makes stale; after the commit the answer is DRF's."""
    same(UNFILTERED_FACETS, bearer, settings, lean=True)
    stored = _doc_versions()
    assert all(v == b for v, b in stored.values()), stored  # each read facet's answer kept
    Service.objects.filter(slug="playback-api").update(lifecycle="deprecated")
    Service.objects.filter(slug="quote-svc").update(owner=squad)
    after = _doc_versions()
    changed = {f for f in after if after[f][0] != stored[f][0]}
    assert changed == {"lifecycle", "owner", "tribe"}  # only the facets whose counts moved
    with _other_connection(settings) as other:  # a transaction left open, holding the change
        other.execute("SET lock_timeout = '20s'")
        other.execute(
            "UPDATE squads_service SET owner_id = %s WHERE slug = 'playback-api'", [other_squad.pk]
        )
        other.execute(
            "UPDATE squads_serviceview SET owner_slug = %s WHERE slug = 'playback-api'",
            [other_squad.slug],
        )
        with connection.cursor() as cur:  # a read that waited for the open transaction errs
            cur.execute("SET lock_timeout = '20s'")
        # owner's stored answer is stale and its row held: assembled, answered, not stored
        before_commit = get(UNFILTERED_FACETS, bearer, settings)[1]
        owners = {v["value"]: v["count"] for v in before_commit["facets"]["owner"]}
        assert owners[other_squad.slug] == 2  # what is committed: search-index, search-ui
        assert _doc_versions()["owner"][1] != _doc_versions()["owner"][0]  # not stored
        other.commit()
    with connection.cursor() as cur:
        cur.execute("RESET lock_timeout")
    version, body_version = _doc_versions()["owner"]
    assert version != body_version  # the committed change made the stored answer stale
    body = same(UNFILTERED_FACETS, bearer, settings, lean=True)[1]
    owners = {v["value"]: v["count"] for v in body["facets"]["owner"]}
    assert owners[other_squad.slug] == 3
    assert _doc_versions()["owner"] == (version, version)
