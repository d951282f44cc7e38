"""Backstage fidelity (issue 13): what Backstage accepts is accepted, and original → import →
export equals the original up to key order."""

import textwrap

import pytest
import yaml

from portal.actors import Actor
from squads import backstage
from squads.models import Api, ForeignEntity, Service, Squad, Tribe
from tests.backstage.conftest import run_import
from tests.backstage.test_locations import http_catalog  # noqa: F401 - fixture

ORG = """\
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: Platform, title: The Platform Team}
spec: {type: team, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: cncf, labels: {org: cncf}, annotations: {example.com/x: "1"}, tags: [foundation]}
spec: {type: department, children: [], profile: {displayName: CNCF, email: cncf@example.com}}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: jdoe
  title: Jane Doe
  description: Platform engineer
  labels: {site: lisbon}
  tags: [oncall]
  links: [{url: "https://example.com/jdoe", title: Home, icon: home, type: website}]
spec: {profile: {displayName: Jane, email: jdoe@example.com}, memberOf: [platform]}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: dept.only}
spec: {memberOf: [CNCF]}
"""

ENTITIES = """\
apiVersion: backstage.io/v1alpha1
kind: Domain
metadata: {name: payments, labels: {area: money}, annotations: {example.com/d: "x"}}
spec: {owner: CNCF, type: business}
---
apiVersion: backstage.io/v1alpha1
kind: Domain
metadata: {name: cards}
spec: {owner: cncf, subdomainOf: payments}
---
apiVersion: backstage.io/v1alpha1
kind: System
metadata: {name: ledger.core}
spec: {owner: group:default/Platform, domain: payments, type: product, lifecycle: sandbox}
---
apiVersion: backstage.io/v1alpha1
kind: Resource
metadata: {name: ledger-db}
spec: {type: database, owner: platform, dependsOn: [resource:ledger-cache], dependencyOf: [component:ledger]}
---
apiVersion: backstage.io/v1alpha1
kind: Resource
metadata: {name: ledger-cache}
spec: {type: cache, owner: user:jdoe, lifecycle: production}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: ledger
  title: Ledger
  labels: {tier: gold}
  annotations: {backstage.io/techdocs-ref: "dir:."}
spec:
  type: service
  lifecycle: decommissioned
  owner: user:default/jdoe
  system: ledger.core
  subcomponentOf: ledger-parent
  dependsOn: [resource:ledger-db]
  customField: {kept: [1, 2]}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: ledger-parent}
spec: {type: service, lifecycle: Production, owner: user:dept.only}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: cncf-site}
spec: {type: website, lifecycle: production, owner: CNCF}
---
apiVersion: backstage.io/v1alpha1
kind: Template
metadata: {name: new-service}
spec: {type: service, owner: platform, steps: [{id: fetch, action: fetch:template}]}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: gizmo}
spec: {owner: platform, size: 3}
"""


def _docs(text):
    return [d for d in yaml.safe_load_all(text) if d]


def _key(d):
    m = d["metadata"]
    return (d["kind"].lower(), m.get("namespace", "default"), m["name"].lower())


@pytest.fixture
def imported(db):
    return backstage.import_catalog([("org.yaml", ORG), ("e.yaml", ENTITIES)], Actor.command())


def test_any_lifecycle_is_kept_and_mapped(imported):
    ledger = Service.objects.get(slug="ledger")
    assert (ledger.lifecycle, ledger.lifecycle_raw) == ("deprecated", "decommissioned")
    assert ledger.lifecycle_label == "decommissioned"
    parent = Service.objects.get(slug="ledger-parent")
    assert (parent.lifecycle, parent.lifecycle_label) == ("production", "Production")
    assert Service.objects.filter(lifecycle="deprecated").count() == 1  # filters keep working


def test_refs_are_case_insensitive_and_any_owner_is_kept(imported):
    assert Squad.objects.filter(slug__iexact="platform").count() == 1
    assert Squad.objects.get(slug="platform").name == "The Platform Team"
    assert Tribe.objects.get(slug="cncf").kind == "department"
    # a User owner: permissions follow their team; a department-only user is a valid owner
    assert Service.objects.get(slug="ledger").owner.slug == "platform"
    assert Service.objects.get(slug="ledger-parent").owner is None
    exported = {_key(d): d for d in _docs(backstage.export_catalog())}
    assert exported[("component", "default", "ledger")]["spec"]["owner"] == "user:default/jdoe"
    assert exported[("component", "default", "cncf-site")]["spec"]["owner"] == "CNCF"
    assert exported[("domain", "default", "payments")]["spec"]["owner"] == "CNCF"


def test_same_name_in_two_cases_is_one_entity(db):
    text = ORG + "---\n" + ORG.split("---\n")[0].replace("Platform,", "platform,")
    with pytest.raises(backstage.ImportFailed) as info:
        backstage.import_catalog([("org.yaml", text)], Actor.command())
    assert "group:default/platform is defined twice" in str(info.value)


def test_export_equals_the_original(imported):
    exported = {_key(d): d for d in _docs(backstage.export_catalog())}
    for doc in _docs(ORG) + _docs(ENTITIES):
        assert exported[_key(doc)] == doc, _key(doc)
    assert ForeignEntity.objects.count() == 2  # Template and the custom kind
    assert "backline.io/tier" not in yaml.safe_dump(exported[("component", "default", "ledger")])


def test_changes_made_in_backline_show_in_the_export(imported):
    ledger = Service.objects.get(slug="ledger")
    ledger.name, ledger.tier = "The Ledger", 1
    ledger.save()
    Squad.objects.filter(slug="platform").update(mission="Runs the platform")
    exported = {_key(d): d for d in _docs(backstage.export_catalog())}
    doc = exported[("component", "default", "ledger")]
    assert doc["metadata"]["title"] == "The Ledger"
    assert doc["metadata"]["annotations"]["backline.io/tier"] == "1"
    assert doc["metadata"]["labels"] == {"tier": "gold"}  # the rest is kept
    assert doc["spec"]["customField"] == {"kept": [1, 2]}
    assert doc["spec"]["owner"] == "user:default/jdoe"
    team = exported[("group", "default", "platform")]
    assert team["metadata"]["description"] == "Runs the platform"
    assert team["metadata"]["title"] == "The Platform Team"


def test_long_names_titles_and_namespaces(db):
    ns, name, title = "n" * 63, "a." + "b" * 61, "T" * 500
    text = textwrap.dedent(
        f"""\
        apiVersion: backstage.io/v1alpha1
        kind: Group
        metadata: {{name: t, namespace: {ns}}}
        spec: {{type: team, children: []}}
        ---
        apiVersion: backstage.io/v1alpha1
        kind: Component
        metadata: {{name: {name}, namespace: {ns}, title: {title}}}
        spec: {{type: service, lifecycle: production, owner: t}}
        """
    )
    backstage.import_catalog([("long.yaml", text)], Actor.command())
    s = Service.objects.get()
    assert s.slug == f"{ns}--{name}" and s.name == title[:200]
    out = [d for d in _docs(backstage.export_catalog()) if d["kind"] == "Component"]
    assert out[0]["metadata"]["title"] == title


def test_errors_name_entity_refs_and_required_fields(db):
    text = textwrap.dedent(
        """\
        apiVersion: backstage.io/v1alpha1
        kind: Component
        metadata: {name: foo, namespace: ops}
        spec: {type: service, lifecycle: production}
        ---
        apiVersion: backstage.io/v1alpha1
        kind: Component
        metadata: {name: bar, namespace: ops}
        spec: {type: service, lifecycle: production, owner: nobody, dependsOn: [component:baz]}
        """
    )
    with pytest.raises(backstage.ImportFailed) as info:
        backstage.import_catalog([("ops.yaml", text)], Actor.command())
    message = str(info.value)
    assert "ops.yaml: document 1 (component:ops/foo): spec.owner: is required" in message
    assert "spec.owner: group:ops/nobody does not exist" in message
    assert "spec.dependsOn[0]: component:ops/baz does not exist" in message
    assert "ops--" not in message


def test_same_file_twice_and_optional_location(db, tmp_path):
    (tmp_path / "org.yaml").write_text(ORG)
    (tmp_path / "loc.yaml").write_text(
        "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata: {name: l}\n"
        "spec: {presence: optional, targets: [./org.yaml, ./missing.yaml]}\n"
    )
    org = tmp_path / "org.yaml"
    report = run_import([org, org, tmp_path / "loc.yaml"])
    assert report.ok and report.counts["squad"]["created"] == 1
    assert any("optional target './missing.yaml'" in w for w in report.warnings)
    (tmp_path / "loc.yaml").write_text(
        "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata: {name: l}\n"
        "spec: {targets: [./missing.yaml]}\n"
    )
    with pytest.raises(backstage.ImportFailed):
        run_import([tmp_path / "loc.yaml"])


API = """\
apiVersion: backstage.io/v1alpha1
kind: API
metadata: {name: ledger-api}
spec: {type: openapi, lifecycle: production, owner: platform, definition: {$openapi: ./ledger.oas.yaml}}
"""


def test_placeholders_are_read_and_kept_for_export(db, tmp_path):
    (tmp_path / "org.yaml").write_text(ORG)
    (tmp_path / "api.yaml").write_text(API)
    (tmp_path / "ledger.oas.yaml").write_text("openapi: 3.0.0\ninfo: {title: Ledger}\n")
    run_import([tmp_path])
    assert Api.objects.get().definition.startswith("openapi: 3.0.0")
    api = [d for d in _docs(backstage.export_catalog()) if d["kind"] == "API"][0]
    assert api["spec"]["definition"] == {"$openapi": "./ledger.oas.yaml"}


def test_placeholders_stay_inside_the_imported_folder(db, tmp_path):
    (tmp_path / "secret.txt").write_text("top secret")
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "org.yaml").write_text(ORG)
    (tmp_path / "cat" / "api.yaml").write_text(API.replace("./ledger.oas.yaml", "../secret.txt"))
    with pytest.raises(backstage.ImportFailed) as info:
        run_import([tmp_path / "cat"])
    assert "outside the imported folder" in str(info.value)
    assert not Api.objects.exists()


def test_remote_placeholder_is_fetched_like_a_location(db, http_catalog):  # noqa: F811
    run_import([f"{http_catalog}/acme-corp.yaml", f"{http_catalog}/apis/petstore-api.yaml"])
    assert "Swagger Petstore" in Api.objects.get(slug="petstore").definition


def test_dotted_names_have_pages_and_api_rows(imported, client, admin_user):
    client.force_login(admin_user)
    assert client.get("/services/cncf-site/").status_code == 200
    s = Service.objects.create(slug="my.service", name="My service")
    assert s.get_absolute_url() == "/services/my.service/"
    assert client.get(s.get_absolute_url()).status_code == 200
    assert client.get("/systems/ledger.core/").status_code == 200
    assert client.get("/api/v1/services/my.service/").json()["slug"] == "my.service"


def test_an_edit_adds_only_what_changed(imported):
    Service.objects.filter(slug="cncf-site").update(tier=2)
    exported = {_key(d): d for d in _docs(backstage.export_catalog())}
    doc = exported[("component", "default", "cncf-site")]
    assert doc["metadata"] == {"name": "cncf-site", "annotations": {"backline.io/tier": "2"}}
    assert doc["spec"] == {"type": "website", "lifecycle": "production", "owner": "CNCF"}


def test_the_api_shows_the_lifecycle_as_written(imported, client, admin_user):
    client.force_login(admin_user)
    row = client.get("/api/v1/services/ledger/").json()
    assert (row["lifecycle"], row["lifecycle_label"]) == ("deprecated", "decommissioned")
    page = client.get("/services/ledger/").content.decode()
    assert "decommissioned" in page


def test_a_service_differing_only_in_case_is_refused(db, alice, squad):
    from rest_framework.test import APIClient

    Service.objects.create(slug="queue-svc", name="Queue", owner=squad)
    c = APIClient()
    c.force_authenticate(alice)
    resp = c.post(
        "/api/v1/services/",
        {"slug": "Queue-Svc", "name": "Queue again", "owner": squad.slug},
        format="json",
    )
    assert resp.status_code == 400 and "queue-svc" in resp.content.decode()
    assert Service.objects.count() == 1


def test_a_symlink_out_of_the_imported_folder_is_refused(db, tmp_path):
    (tmp_path / "secret.txt").write_text("top secret")
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "org.yaml").write_text(ORG)
    (tmp_path / "cat" / "ledger.oas.yaml").symlink_to(tmp_path / "secret.txt")
    (tmp_path / "cat" / "api.yaml").write_text(API)
    with pytest.raises(backstage.ImportFailed) as info:
        run_import([tmp_path / "cat"])
    assert "outside the imported folder" in str(info.value)
