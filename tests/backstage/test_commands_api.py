"""The command line and API doors."""

import io
import subprocess
import sys

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError

from portal.models import AuditEvent
from squads.models import Service, Squad, Tribe
from tests.backstage.conftest import snapshot
from tests.conftest import ROOT, _worker_env, client_for, token_client

IMPORT_URL = "/api/v1/catalog/import"
EXPORT_URL = "/api/v1/catalog/export"
COMPONENT = (
    "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: %s}\n"
    "spec: {type: service, lifecycle: production, owner: %s}\n"
)


# --- commands -----------------------------------------------------------------------------------
def test_import_command_success_prints_summary(db, complete_catalog):
    out = io.StringIO()
    call_command(
        "import_backstage",
        str(complete_catalog / "all.yaml"),
        str(complete_catalog / "acme-corp.yaml"),
        stdout=out,
    )
    text = out.getvalue()
    assert "created 59, updated 0, unchanged 0" in text  # 57 + the 2 AiResources, now stored
    assert "component  created    13" in text
    assert Service.objects.count() == 13
    assert AuditEvent.objects.filter(action="catalog.import", door="command").count() == 1


def test_import_command_failure_prints_every_error(db, catalog_dir, alice):
    before = snapshot()
    err = io.StringIO()
    with pytest.raises(CommandError, match="2 errors; nothing was imported"):
        call_command(
            "import_backstage",
            str(catalog_dir / "all.yaml"),
            str(catalog_dir / "acme" / "org.yaml"),
            stderr=err,
        )
    lines = err.getvalue().splitlines()
    assert len(lines) == 2
    assert "all-apis.yaml: document 1 (location:default/example-apis): spec.targets[2]:" in lines[0]
    assert (
        "petstore-component.yaml: document 1 (component:default/petstore): spec.providesApis[2]: api:default/hello-world does not exist"
        in lines[1]
    )
    assert snapshot() == before


def test_import_command_dry_run_and_missing_path(db, complete_catalog):
    out = io.StringIO()
    call_command(
        "import_backstage", "--dry-run", str(complete_catalog / "acme-corp.yaml"), stdout=out
    )
    assert "Dry run" in out.getvalue() and not Squad.objects.exists()
    with pytest.raises(CommandError, match="no such file or directory"):
        call_command("import_backstage", str(complete_catalog / "nope.yaml"))


def test_export_command_prints_yaml(db, complete_catalog):
    call_command("import_backstage", str(complete_catalog / "acme-corp.yaml"), stdout=io.StringIO())
    out = io.StringIO()
    call_command("export_backstage", stdout=out)
    docs = list(yaml.safe_load_all(out.getvalue()))
    assert len(docs) == 4 + 5 + 17
    assert {d["kind"] for d in docs} == {"Group", "User"}


def _manage(*args):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=_worker_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_command_exit_codes_in_a_real_process(transactional_db, catalog_dir, complete_catalog):
    bad = _manage(
        "import_backstage", str(catalog_dir / "all.yaml"), str(catalog_dir / "acme" / "org.yaml")
    )
    assert bad.returncode != 0
    assert "spec.providesApis[2]: api:default/hello-world does not exist" in bad.stderr
    assert "spec.targets[2]" in bad.stderr
    assert not Tribe.objects.exists()
    good = _manage(
        "import_backstage",
        str(complete_catalog / "all.yaml"),
        str(complete_catalog / "acme-corp.yaml"),
    )
    assert good.returncode == 0, good.stderr
    assert "created 59" in good.stdout  # 57 + the 2 AiResources, now stored
    assert Service.objects.count() == 13
    exported = _manage("export_backstage")
    assert exported.returncode == 0 and exported.stdout.startswith(
        "apiVersion: backstage.io/v1alpha1"
    )


# --- API ----------------------------------------------------------------------------------------
def test_api_import_yaml_body(db, alice, squad):
    c = client_for(alice)
    resp = c.post(
        IMPORT_URL, data=COMPONENT % ("player", "playback"), content_type="application/yaml"
    )
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert body["created"] == 1 and body["counts"]["component"]["created"] == 1
    assert "created 1" in body["summary"]
    for ctype in ("text/yaml", "text/plain"):
        resp = c.post(IMPORT_URL, data=COMPONENT % ("player", "playback"), content_type=ctype)
        assert resp.status_code == 200 and resp.json()["unchanged"] == 1
    assert AuditEvent.objects.filter(action="catalog.import").count() == 3


def test_api_import_multipart_several_files_and_dry_run(db, admin_user, complete_catalog):
    from django.core.files.uploadedfile import SimpleUploadedFile

    files = [
        SimpleUploadedFile(p.name, p.read_bytes())
        for p in sorted((complete_catalog / "acme").glob("*.yaml"))
    ]
    artist = (complete_catalog / "components" / "www-artist-component.yaml").read_bytes()
    files.append(
        SimpleUploadedFile("artist.yaml", artist.replace(b"system: artist-engagement-portal", b""))
    )
    c = client_for(admin_user)
    resp = c.post(IMPORT_URL + "?dry_run=1", {"file": files}, format="multipart")
    assert resp.status_code == 200, resp.content
    assert resp.json()["dry_run"] is True and not Service.objects.exists()
    for f in files:
        f.seek(0)
    resp = c.post(IMPORT_URL, {"file": files}, format="multipart")
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert len(body["sources"]) == 10 and body["sources"][-1] == "artist.yaml"
    assert body["counts"]["squad"]["created"] == 5 and body["counts"]["component"]["created"] == 1
    assert any("not followed" in w for w in body["warnings"])  # org.yaml's Location


def test_api_import_400_lists_every_error(db, admin_user, catalog_dir):
    text = (catalog_dir / "components" / "petstore-component.yaml").read_text()
    resp = client_for(admin_user).post(IMPORT_URL, data=text, content_type="application/yaml")
    assert resp.status_code == 400
    body = resp.json()
    assert body["code"] == "invalid"
    assert "nothing was imported" in body["message"]
    fields = {e["field"] for e in body["errors"]}
    assert fields == {
        "spec.owner",
        "spec.providesApis[0]",
        "spec.providesApis[1]",
        "spec.providesApis[2]",
    }
    for e in body["errors"]:
        assert e["file"] == "request body" and e["document"] == 1
        assert e["entity"] == "component:default/petstore" and e["message"]
    resp = client_for(admin_user).post(IMPORT_URL, data="", content_type="application/yaml")
    assert resp.status_code == 400 and resp.json()["code"] == "invalid"


def test_api_import_401_anonymous(db, api):
    resp = api.post(IMPORT_URL, data=COMPONENT % ("x", "playback"), content_type="application/yaml")
    assert resp.status_code == 401
    assert api.get(EXPORT_URL).status_code == 401
    assert not Service.objects.exists()


def test_api_import_403(db, bob, charlie, squad, make_token):
    no_scope = make_token(squad, ["pipelines:run"])
    resp = token_client(no_scope).post(
        IMPORT_URL, data=COMPONENT % ("x", "playback"), content_type="application/yaml"
    )
    assert resp.status_code == 403
    assert resp.json()["code"] == "permission_denied"
    assert "catalog:write" in resp.json()["message"]  # refused before the YAML is read
    for user in (bob, charlie):  # bob: member of another squad; charlie: of none
        resp = client_for(user).post(
            IMPORT_URL, data=COMPONENT % ("x", "playback"), content_type="application/yaml"
        )
        assert resp.status_code == 403
    ok = make_token(squad, ["catalog:write"], name="writer")
    resp = token_client(ok).post(
        IMPORT_URL, data=COMPONENT % ("x", "playback"), content_type="application/yaml"
    )
    assert resp.status_code == 200
    assert AuditEvent.objects.get(action="catalog.import").door == "api"


def test_api_import_413_over_10_mb(db, admin_user):
    big = "# " + "x" * (10 * 1024 * 1024) + "\n"
    resp = client_for(admin_user).post(IMPORT_URL, data=big, content_type="application/yaml")
    assert resp.status_code == 413
    assert resp.json()["code"] == "too_large"


def test_api_export_yaml(db, charlie, complete_catalog):
    call_command(
        "import_backstage",
        str(complete_catalog / "all.yaml"),
        str(complete_catalog / "acme-corp.yaml"),
        stdout=io.StringIO(),
    )
    resp = client_for(charlie).get(EXPORT_URL)
    assert resp.status_code == 200
    assert resp["Content-Type"].startswith("application/yaml")
    docs = list(yaml.safe_load_all(resp.content.decode()))
    assert len([d for d in docs if d["kind"] == "Component"]) == 13


def test_schema_documents_the_views_without_warnings(db, capsys):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    out = capsys.readouterr()
    imp = schema["paths"]["/api/v1/catalog/import"]["post"]
    assert set(imp["requestBody"]["content"]) == {
        "application/yaml",
        "text/yaml",
        "text/plain",
        "multipart/form-data",
    }
    assert {"200", "400", "403", "413"} <= set(imp["responses"])
    exp = schema["paths"]["/api/v1/catalog/export"]["get"]
    assert "application/yaml" in exp["responses"]["200"]["content"]
    noise = [
        line
        for line in (out.err + out.out).splitlines()
        if "backstage" in line.lower() or "Catalog" in line
    ]
    assert noise == []


# --- the UI door (squads.views.catalog_import calls the same function) ---------------------------
def test_ui_upload_imports_and_lists_errors(db, admin_user, complete_catalog, catalog_dir):
    from django.core.files.uploadedfile import SimpleUploadedFile

    c = client_for(admin_user)
    files = [
        SimpleUploadedFile(p.name, p.read_bytes())
        for p in sorted((complete_catalog / "acme").glob("*.yaml"))
    ]
    resp = c.post("/catalog/import/", {"files": files})
    assert resp.status_code == 200
    assert b"import-report" in resp.content and Squad.objects.count() == 5
    bad = SimpleUploadedFile(
        "petstore.yaml", (catalog_dir / "components" / "petstore-component.yaml").read_bytes()
    )
    resp = c.post("/catalog/import/", {"files": [bad]})
    assert resp.status_code == 400
    assert b"import-errors" in resp.content and b"spec.providesApis[2]" in resp.content
    assert not Service.objects.exists()
