"""Registered locations refreshed by beat: files and URLs."""

import functools
import http.server
import shutil
import threading

import pytest
from django.conf import settings
from django.core.exceptions import PermissionDenied

from portal.actors import Actor
from portal.models import AuditEvent
from squads import backstage
from squads.models import Api, Location, Service, Squad
from squads.tasks import refresh_locations


@pytest.fixture
def http_catalog(complete_catalog):
    """The complete sample catalog served over HTTP by a local http.server thread."""
    handler = functools.partial(
        type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None}),
        directory=str(complete_catalog),
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_beat_schedule_runs_refresh_every_configured_interval():
    from portal.celery import app
    from squads.schedule import BEAT_SCHEDULE

    entry = BEAT_SCHEDULE["squads.refresh_locations"]
    assert entry["task"] == "squads.tasks.refresh_locations" == refresh_locations.name
    assert entry["schedule"] == settings.CATALOG_LOCATION_REFRESH_SECONDS
    assert "squads.tasks.refresh_locations" in app.tasks


def test_register_validates_by_dry_run(db, admin_user, catalog_dir, complete_catalog):
    admin = Actor(user=admin_user)
    with pytest.raises(backstage.ImportFailed):
        backstage.register_location(str(catalog_dir / "all.yaml"), admin)
    assert not Location.objects.exists()
    loc = backstage.register_location(str(complete_catalog / "acme-corp.yaml"), admin)
    assert loc.target == str(complete_catalog / "acme-corp.yaml")
    assert not Squad.objects.exists()  # validated only; beat imports it
    assert AuditEvent.objects.filter(action="catalog.location.register").count() == 1
    with pytest.raises(backstage.SourceError):
        backstage.register_location(str(complete_catalog / "missing.yaml"), admin)


def test_only_admins_register_locations(db, alice, complete_catalog, http_catalog):
    for target in (str(complete_catalog / "acme-corp.yaml"), f"{http_catalog}/acme-corp.yaml"):
        with pytest.raises(PermissionDenied, match="org admin"):
            backstage.register_location(target, Actor(user=alice))
    assert not Location.objects.exists()


def test_remote_catalog_cannot_name_local_files(db, tmp_path, http_catalog, complete_catalog):
    (complete_catalog / "sneaky.yaml").write_text(
        "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata: {name: sneaky}\n"
        f"spec: {{targets: ['file://{complete_catalog}/acme-corp.yaml']}}\n"
    )
    with pytest.raises(backstage.ImportFailed, match="local file named by a remote"):
        backstage.import_catalog(
            backstage.load_sources([f"{http_catalog}/sneaky.yaml"]), Actor.command()
        )


def test_refresh_task_in_process_a_bad_location_does_not_block_others(
    db, complete_catalog, tmp_path
):
    good = Location.objects.create(target=str(complete_catalog / "acme-corp.yaml"))
    broken = tmp_path / "broken.yaml"
    shutil.copy(complete_catalog / "components" / "petstore-component.yaml", broken)
    bad = Location.objects.create(target=str(broken))
    gone = Location.objects.create(target=str(tmp_path / "gone.yaml"))
    result = refresh_locations.apply().get()
    assert result == {good.target: "ok", bad.target: "error", gone.target: "error"}
    good.refresh_from_db(), bad.refresh_from_db(), gone.refresh_from_db()
    assert good.last_status == "ok" and good.last_refreshed_at and good.last_error == ""
    assert good.last_summary["counts"]["squad"]["created"] == 5
    assert (
        bad.last_status == "error"
        and "spec.owner: group:default/team-c does not exist" in bad.last_error
    )
    assert bad.last_summary["errors"][0]["entity"] == "component:default/petstore"
    assert "no such file" in gone.last_error and gone.last_refreshed_at
    assert Squad.objects.count() == 5
    event = AuditEvent.objects.get(action="catalog.import")
    assert event.door == "beat"
    # second run: nothing changes
    refresh_locations.apply()
    good.refresh_from_db()
    assert good.last_summary["created"] == 0 and good.last_summary["updated"] == 0


def test_url_location_served_over_http(db, admin_user, http_catalog):
    target = f"{http_catalog}/all.yaml"
    org = f"{http_catalog}/acme-corp.yaml"
    backstage.register_location(org, Actor(user=admin_user))
    # all.yaml needs the groups first: refresh goes by target order (acme-corp < all)
    Location.objects.create(target=target)
    refresh_locations.apply()
    assert dict(Location.objects.values_list("target", "last_status")) == {org: "ok", target: "ok"}
    assert Service.objects.count() == 13
    # relative $text placeholders are fetched relative to the URL
    assert "webhooks" in Api.objects.get(slug="petstore-webhook").definition
    loc = Location.objects.get(target=target)
    assert loc.last_summary["locations_followed"] >= 6


def test_load_sources_urls_and_file_urls(http_catalog, complete_catalog):
    srcs = backstage.load_sources(
        [f"{http_catalog}/acme-corp.yaml", f"file://{complete_catalog}/all.yaml"]
    )
    assert [s.name for s in srcs] == [
        f"{http_catalog}/acme-corp.yaml",
        str(complete_catalog / "all.yaml"),
    ]
    assert srcs[0].origin.startswith("http://") and srcs[1].origin == str(
        complete_catalog / "all.yaml"
    )
    with pytest.raises(backstage.SourceError, match="404"):
        backstage.load_sources([f"{http_catalog}/nope.yaml"])
