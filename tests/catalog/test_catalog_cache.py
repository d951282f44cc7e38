"""The catalog cache (squads/cache.py, portal/cachegen.py): result rows are served from Redis
until something they show changes, whichever way the change is written."""

import threading

import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from infra.models import DriftStatus, Workspace
from monitoring.models import Alert, AlertRule
from pipelines.models import PipelineRun, RunStatus
from portal.actors import Actor
from squads import backstage
from squads.cache import CATALOG, CHOICES
from squads.models import Membership, Service, Squad, Tag
from tests.conftest import client_for, token_client
from tests.factories import DependencyFactory, ServiceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def svc(squad):
    return ServiceFactory(
        slug="player-api",
        name="Player API",
        owner=squad,
        type="service",
        description="Streams audio",
        repository_url="https://git.example.org/player.git",
    )


@pytest.fixture
def api_client(squad, make_token):
    return token_client(make_token(squad, ["catalog:read"]))


def _api_row(client, slug):
    rows = client.get("/api/v1/services/?page_size=500").json()["results"]
    return next((r for r in rows if r["slug"] == slug), None)


def _results(resp):
    return resp.content.decode().split('<div id="results">', 1)[1].split("</table>", 1)[0]


def test_a_repeated_page_is_served_from_the_cache(alice, svc):
    c = client_for(alice)
    first = c.get("/catalog/")
    with CaptureQueriesContext(connection) as hit:
        again = c.get("/catalog/")
    assert _results(again) == _results(first) and "Player API" in _results(first)
    tables = " ".join(q["sql"] for q in hit.captured_queries)
    # only the session, the user and their person (page header) are read on a hit
    assert "squads_service" not in tables and "pipelines_pipelinerun" not in tables
    assert len(hit.captured_queries) <= 3, [q["sql"][:80] for q in hit.captured_queries]
    # an HTMX request for the results alone uses the same entry
    frag = c.get("/catalog/", HTTP_HX_REQUEST="true")
    assert frag.content.decode().strip() in first.content.decode()


def test_each_query_string_is_its_own_entry(alice, squad):
    ServiceFactory(slug="alpha", name="Alpha", owner=squad, lifecycle="production")
    ServiceFactory(slug="beta", name="Beta", owner=squad, lifecycle="deprecated")
    c = client_for(alice)
    assert b"Beta" not in c.get("/catalog/?lifecycle=production").content
    assert b"Alpha" not in c.get("/catalog/?lifecycle=deprecated").content
    assert b"Alpha" in c.get("/catalog/").content and b"Beta" in c.get("/catalog/").content


def test_save_rename_delete_and_tags_refresh_the_rows(alice, svc, squad, api_client):
    c = client_for(alice)
    c.get("/catalog/")
    assert _api_row(api_client, "player-api")["name"] == "Player API"
    svc.name = "Player Gateway"
    svc.save()
    assert b"Player Gateway" in c.get("/catalog/").content
    assert _api_row(api_client, "player-api")["name"] == "Player Gateway"
    svc.tags.add(Tag.objects.create(name="streaming"))
    assert b">streaming<" in c.get("/catalog/").content
    assert _api_row(api_client, "player-api")["tags"] == ["streaming"]
    Squad.objects.filter(pk=squad.pk).update(name="Playback Core")  # QuerySet.update
    assert b"Playback Core" in c.get("/catalog/").content
    Service.objects.filter(pk=svc.pk).update(lifecycle="deprecated")
    assert _api_row(api_client, "player-api")["lifecycle"] == "deprecated"
    svc.delete()
    assert b"Player Gateway" not in c.get("/catalog/").content
    assert _api_row(api_client, "player-api") is None


def test_scorecard_inputs_of_every_app_refresh_the_rows(alice, svc, squad, api_client):
    """Rules read memberships, dependencies, pipeline runs, alert rules, alerts and Terraform
    drift: a change to any of them shows in the cached rows at once."""
    c = client_for(alice)

    def card():
        return _api_row(api_client, "player-api")["scorecard"]

    def title():
        html = c.get("/catalog/").content.decode().split('href="/services/player-api/"', 1)[1]
        return html.split('title="', 1)[1].split('"', 1)[0]

    before = card()["percent"], title()
    AlertRule.objects.create(service=svc, name="errors", signal="error_ratio", threshold=0.05)
    with_rule = card()["percent"], title()
    assert with_rule[0] > before[0] and with_rule[1] != before[1]

    run = PipelineRun.objects.create(service=svc, number=1, status=RunStatus.RUNNING, ref="main")
    assert b">running<" in c.get("/catalog/").content  # the Last run column
    # the runner finishes runs with QuerySet.update(), as the executor does
    PipelineRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
    page = c.get("/catalog/").content
    assert b">succeeded<" in page and b">running<" not in page
    green = card()["percent"]
    assert green > with_rule[0]

    ws = Workspace.objects.create(slug="player-net", name="Player network", owner=squad)
    ws.services.add(svc)
    Workspace.objects.filter(pk=ws.pk).update(drift_status=DriftStatus.DRIFTED)
    drifted = card()["percent"]
    assert drifted < green
    Workspace.objects.filter(pk=ws.pk).update(drift_status=DriftStatus.NONE)
    assert card()["percent"] > drifted

    rule = AlertRule.objects.get(service=svc)
    Alert.objects.create(rule=rule, service=svc, state="firing", severity="critical")
    assert card()["level"] in (None, "bronze", "silver")  # gold needs no critical alert firing

    Service.objects.filter(pk=svc.pk).update(tier=1)  # tier-1 rules now apply
    tier1 = title()
    assert tier1 != before[1]
    assert Membership.objects.filter(squad=squad, role="lead").exists()
    Membership.objects.filter(squad=squad).update(role="member")  # the squad loses its lead
    with_lead = title()
    assert with_lead != tier1
    target = ServiceFactory(slug="old-db", owner=squad, lifecycle="production")
    DependencyFactory(source=svc, target_service=target)
    assert title() == with_lead
    target.lifecycle = "deprecated"
    target.save()  # another service's lifecycle changes this one's card
    assert title() != with_lead


def test_writes_to_fields_no_row_shows_do_not_invalidate(svc):
    run = PipelineRun.objects.create(service=svc, number=1, status=RunStatus.RUNNING, ref="main")
    gen = CATALOG.current()
    PipelineRun.objects.filter(pk=run.pk).update(heartbeat_at=run.created_at, log_size=10)
    run.log_size = 20
    run.save(update_fields=["log_size"])
    AlertRule.objects.create(service=svc, name="x", signal="error_ratio", threshold=1)
    gen_after_rule = CATALOG.current()
    assert gen_after_rule > gen
    AlertRule.objects.filter(service=svc).update(last_value=0.5, last_error="")
    assert CATALOG.current() == gen_after_rule
    PipelineRun.objects.filter(pk=run.pk).update(status=RunStatus.FAILED)
    assert CATALOG.current() > gen_after_rule


def test_backstage_import_written_with_copy_shows_at_once(alice, squad):
    c = client_for(alice)
    assert b"lyrics-api" not in c.get("/catalog/").content
    doc = (
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: lyrics-api\n"
        "spec:\n  type: service\n  lifecycle: production\n  owner: playback\n"
    )
    backstage.import_catalog([("lyrics.yaml", doc)], Actor.command())
    assert b"lyrics-api" in c.get("/catalog/").content


def test_filter_choices_follow_the_catalog(alice, squad, svc):
    c = client_for(alice)
    assert b'<option value="deep-audio"' not in c.get("/catalog/").content
    svc.tags.add(Tag.objects.create(name="deep-audio"))
    assert b'<option value="deep-audio"' in c.get("/catalog/").content


def test_filter_choices_outlive_row_edits_and_follow_their_inputs(alice, squad, svc):
    c = client_for(alice)
    c.get("/catalog/")
    gen = CHOICES.current()
    Service.objects.filter(pk=svc.pk).update(description="Edited")
    svc.tier = 1
    svc.save()  # a save() without update_fields may change anything: rebuilds them
    assert CHOICES.current() > gen
    gen = CHOICES.current()
    Service.objects.filter(pk=svc.pk).update(description="Edited again", tier=2)
    assert CHOICES.current() == gen  # the rows' generation moved on, the choices' did not
    assert b"Edited again" in c.get("/catalog/").content
    Squad.objects.filter(pk=squad.pk).update(name="Renamed Squad")
    Service.objects.filter(pk=svc.pk).update(type="library")
    assert CHOICES.current() > gen
    page = c.get("/catalog/").content
    assert b'<option value="library">library</option>' in page
    assert b"Renamed Squad</option>" in page
    gen = CHOICES.current()
    CATALOG.bump()  # what COPY writers call: covers the choices too
    assert CHOICES.current() > gen


@override_settings(
    CACHES={
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
)
def test_unreachable_redis_renders_uncached(alice, svc, api_client):
    c = client_for(alice)
    resp = c.get("/catalog/")
    assert resp.status_code == 200 and b"Player API" in resp.content
    svc.name = "Player Renamed"
    svc.save()  # the bump fails quietly
    assert b"Player Renamed" in c.get("/catalog/").content
    assert _api_row(api_client, "player-api")["name"] == "Player Renamed"


@override_settings(CATALOG_CACHE_SECONDS=0)
def test_cache_can_be_turned_off(alice, svc):
    c = client_for(alice)
    c.get("/catalog/")
    with CaptureQueriesContext(connection) as ctx:
        c.get("/catalog/")
    assert any("squads_service" in q["sql"] for q in ctx.captured_queries)


@pytest.mark.django_db(transaction=True)
def test_a_page_rendered_before_a_commit_is_not_served_after_it(squad, alice):
    """A reader can see the bumped counter before the writer's rows are visible; it caches old
    rows under the new generation. The bump after the commit supersedes that entry."""
    svc = ServiceFactory(slug="player-api", name="Player API", owner=squad)
    c = client_for(alice)
    saved, read = threading.Event(), threading.Event()
    seen = {}

    def writer():
        try:
            with transaction.atomic():
                Service.objects.filter(pk=svc.pk).update(name="Player Gateway")  # bumps now
                saved.set()
                assert read.wait(20)
        finally:
            connection.close()

    def reader():
        try:
            assert saved.wait(20)
            seen["during"] = client_for(alice).get("/catalog/").content
        finally:
            read.set()
            connection.close()

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert b"Player API" in seen["during"]  # the uncommitted rename was not visible...
    after = c.get("/catalog/").content
    assert b"Player Gateway" in after and b"Player API" not in after  # ...and is not stale now


def test_local_entries_evict_the_oldest_and_expire():
    from portal.cachegen import MISS, LocalEntries

    local = LocalEntries(size=2)
    local.put("a", 1, 60)
    local.put("b", 2, 60)
    assert local.get("a") == 1  # a is now the most recent
    local.put("c", 3, 60)
    assert local.get("b") is MISS and local.get("a") == 1 and local.get("c") == 3
    local.put("d", 4, -1)  # already expired
    assert local.get("d") is MISS


def test_rows_rendered_inside_a_transaction_are_not_shared(alice, svc):
    """A page rendered after an uncommitted write shows that write; it must not be cached for
    others (the transaction may still roll back)."""
    c = client_for(alice)
    with pytest.raises(RuntimeError), transaction.atomic():
        Service.objects.filter(pk=svc.pk).update(name="Never Committed")
        assert b"Never Committed" in c.get("/catalog/").content
        raise RuntimeError("roll back")
    page = c.get("/catalog/").content
    assert b"Player API" in page and b"Never Committed" not in page
