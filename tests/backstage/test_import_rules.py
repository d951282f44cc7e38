"""Validation, permissions, relations, locations inside files, round trip."""

import textwrap

import pytest
import yaml
from django.core.exceptions import PermissionDenied

from portal.actors import Actor
from portal.models import ApiToken
from squads import backstage
from squads.models import Dependency, Membership, Service, ServiceView, Squad, Tag, Tribe
from tests.backstage.conftest import run_import, snapshot, wipe_catalog

EXTRA = textwrap.dedent(
    """\
    apiVersion: backstage.io/v1alpha1
    kind: Group
    metadata: {name: platform, description: Platform tribe}
    spec: {type: tribe, children: [infra-team]}
    ---
    apiVersion: backstage.io/v1alpha1
    kind: Group
    metadata:
      name: infra-team
      description: Keeps the lights on
      annotations: {backline.io/chat-channel: "#infra", backline.io/oncall: infra-pager}
    spec: {type: team, profile: {displayName: Infra Team}, children: [infra-db-team]}
    ---
    apiVersion: backstage.io/v1alpha1
    kind: Group
    metadata: {name: infra-db-team}
    spec: {type: team, children: []}
    ---
    apiVersion: backstage.io/v1alpha1
    kind: User
    metadata:
      name: dana
      annotations: {backline.io/lead-of: infra-team, backline.io/product-owner-of: infra-db-team}
    spec: {profile: {displayName: Dana Scully, email: dana@example.com}, memberOf: [infra-team, infra-db-team]}
    ---
    apiVersion: backstage.io/v1alpha1
    kind: Resource
    metadata: {name: infra-db, tags: [postgres]}
    spec: {type: database, owner: infra-db-team}
    ---
    apiVersion: backstage.io/v1alpha1
    kind: Component
    metadata:
      name: gateway
      title: Edge Gateway
      description: The front door
      tags: [go, edge]
      annotations:
        backline.io/tier: "1"
        backline.io/runbook: https://runbooks.example.com/gateway
        backline.io/oncall: infra-pager
        github.com/project-slug: acme/gateway
        backstage.io/techdocs-ref: dir:.
    spec:
      type: service
      lifecycle: production
      owner: group:default/infra-team
      dependsOn: [component:default/petstore, resource:infra-db]
      consumesApis: [petstore]
    """
)


def _source(text, name="extra.yaml"):
    return [(name, text)]


def test_relations_roles_annotations(db, complete_catalog):
    run_import([complete_catalog / "all.yaml", complete_catalog / "acme-corp.yaml"])
    backstage.import_catalog(_source(EXTRA), Actor.command())
    infra = Squad.objects.get(slug="infra-team")
    assert (infra.tribe.slug, infra.chat_channel, infra.oncall_contact) == (
        "platform",
        "#infra",
        "infra-pager",
    )
    db_team = Squad.objects.get(slug="infra-db-team")
    assert db_team.parent == infra and db_team.tribe.slug == "platform"  # nearest tribe ancestor
    assert dict(
        Membership.objects.filter(person__slug="dana").values_list("squad__slug", "role")
    ) == {
        "infra-team": "lead",
        "infra-db-team": "product_owner",
    }
    gw = Service.objects.get(slug="gateway")
    assert (gw.name, gw.tier, gw.oncall) == ("Edge Gateway", 1, "infra-pager")
    assert gw.repository_url == "https://github.com/acme/gateway"
    assert gw.runbook_url == "https://runbooks.example.com/gateway"
    assert gw.annotations == {"backstage.io/techdocs-ref": "dir:."}
    deps = {
        (
            d.target_service_id and d.target_service.slug,
            d.target_resource_id and d.target_resource.slug,
        )
        for d in Dependency.objects.filter(source=gw)
    }
    assert deps == {("petstore", None), (None, "infra-db")}
    # dropping a dependency and a tag in the descriptor removes them
    changed = EXTRA.replace(
        "dependsOn: [component:default/petstore, resource:infra-db]",
        "dependsOn: [resource:infra-db]",
    ).replace("tags: [go, edge]", "tags: [go]")
    report = backstage.import_catalog(_source(changed), Actor.command())
    assert report.counts["component"] == {"created": 0, "updated": 1, "unchanged": 0}
    assert list(gw.dependencies.values_list("target_resource__slug", flat=True)) == ["infra-db"]
    assert list(gw.tags.values_list("name", flat=True)) == ["go"]


def test_round_trip_export_wipe_import(db, complete_catalog, alice, bob):
    run_import([complete_catalog / "all.yaml", complete_catalog / "acme-corp.yaml"])
    backstage.import_catalog(_source(EXTRA), Actor.command())
    before = snapshot()
    assert before["dependencies"] and before["memberships"]
    text = backstage.export_catalog()
    docs = list(yaml.safe_load_all(text))
    assert {d["kind"] for d in docs} == {
        "Group",
        "User",
        "Component",
        "System",
        "Domain",
        "API",
        "Resource",
        "AiResource",  # not modelled by Backline: stored and exported as written
    }
    # re-importing the export on the same database changes nothing
    again = backstage.import_catalog(_source(text, "export.yaml"), Actor.command())
    assert again.created == again.updated == 0
    assert backstage.export_catalog() == text  # byte-stable
    wipe_catalog()
    assert snapshot() != before
    # The export keeps the descriptors' `$text: ./x.oas.yaml` placeholders: read from where the
    # API descriptors were, they resolve to the same definitions.
    exported = complete_catalog / "apis" / "export.yaml"
    exported.write_text(text)
    report = run_import([exported])
    assert report.updated == 0 and report.created == again.unchanged
    assert snapshot() == before
    assert backstage.export_catalog() == text


def test_every_error_is_collected_and_named(db):
    text = textwrap.dedent(
        """\
        apiVersion: backstage.io/v1alpha1
        kind: Component
        metadata: {name: ok-one}
        spec: {type: service, lifecycle: production}
        ---
        apiVersion: backstage.io/v1alpha1
        kind: Component
        metadata: {name: bad-name-}
        spec: {type: service, lifecycle: production}
        ---
        apiVersion: backstage.io/v1alpha1
        kind: Component
        metadata:
          name: broken
          tags: [Not A Tag]
          annotations: {backline.io/tier: "7"}
        spec:
          type: service
          lifecycle: beta
          owner: team-nowhere
          system: nowhere
          dependsOn: [api:petstore]
          consumesApis: [ghost]
        ---
        apiVersion: backstage.io/v1alpha1
        kind: System
        metadata: {name: dotted.name}
        spec: {owner: nobody}
        ---
        metadata: {name: kindless}
        apiVersion: backstage.io/v1alpha1
        ---
        apiVersion: backstage.io/v1alpha1
        kind: Component
        metadata: {name: ok-one}
        spec: {type: service, lifecycle: production}
        """
    )
    with pytest.raises(backstage.ImportFailed) as info:
        backstage.import_catalog([("bad.yaml", text)], Actor.command())
    got = {(e.document, e.field) for e in info.value.errors}
    # Backstage's Component and System schemas require spec.owner (documents 1, 2, 6); any
    # lifecycle string is allowed ('beta'); dotted names are valid for every kind.
    assert got == {
        (1, "spec.owner"),
        (2, "metadata.name"),
        (2, "spec.owner"),
        (3, "metadata.tags[0]"),
        (3, f"metadata.annotations[{'backline.io/tier'}]"),
        (3, "spec.owner"),
        (3, "spec.system"),
        (3, "spec.dependsOn[0]"),
        (3, "spec.consumesApis[0]"),
        (4, "spec.owner"),
        (5, "kind"),
        (6, "metadata.name"),
        (6, "spec.owner"),
    }
    lines = str(info.value).splitlines()
    assert (
        "bad.yaml: document 3 (component:default/broken): spec.owner: group:default/team-nowhere does not exist"
        in "\n".join(lines)
    )
    assert "bad.yaml: document 1 (component:default/ok-one): spec.owner: is required" in "\n".join(
        lines
    )
    assert (
        "bad.yaml: document 4 (system:default/dotted.name): spec.owner: group:default/nobody does not exist"
        in "\n".join(lines)
    )
    assert "defined twice" in str(info.value)
    assert not Service.objects.exists()


def test_invalid_yaml_is_an_error_with_its_line(db):
    with pytest.raises(backstage.ImportFailed) as info:
        backstage.import_catalog(
            [("x.yaml", "kind: Component\nmetadata: {name: [\n")], Actor.command()
        )
    assert "x.yaml: document 1: invalid YAML at line" in str(info.value)


def test_group_cycle_and_conflicting_parent(db):
    text = textwrap.dedent(
        """\
        apiVersion: backstage.io/v1alpha1
        kind: Group
        metadata: {name: a}
        spec: {type: tribe, parent: b, children: []}
        ---
        apiVersion: backstage.io/v1alpha1
        kind: Group
        metadata: {name: b}
        spec: {type: tribe, parent: a, children: [c]}
        ---
        apiVersion: backstage.io/v1alpha1
        kind: Group
        metadata: {name: c}
        spec: {type: team, parent: a, children: []}
        """
    )
    with pytest.raises(backstage.ImportFailed) as info:
        backstage.import_catalog([("g.yaml", text)], Actor.command())
    messages = str(info.value)
    assert "loops back" in messages
    assert (
        "g.yaml: document 2 (group:default/b): spec.children[0]: group:default/c names group:default/a as its parent"
        in messages
    )
    assert not Tribe.objects.exists()


def test_location_cycle_is_followed_once(db, tmp_path):
    (tmp_path / "a.yaml").write_text(
        "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata: {name: a}\n"
        "spec: {targets: [./sub/b.yaml]}\n"
    )
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yaml").write_text(
        "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata: {name: b}\n"
        "spec: {targets: [../a.yaml, ./t.yaml]}\n"
    )
    (tmp_path / "sub" / "t.yaml").write_text(
        "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {name: t}\nspec: {type: tribe, children: []}\n"
    )
    report = run_import([tmp_path / "a.yaml"])
    assert report.counts["tribe"]["created"] == 1 and report.files_read == 3
    assert any("already read" in w for w in report.warnings)


def test_uploaded_location_is_not_followed(db, catalog_dir):
    text = (catalog_dir / "all.yaml").read_text()
    report = backstage.import_catalog([("all.yaml", text)], Actor.command())
    assert report.created == 0 and report.locations_followed == 0
    assert any("not followed" in w for w in report.warnings)


# --- permissions --------------------------------------------------------------------------------
def _component(name, owner):
    return textwrap.dedent(
        f"""\
        apiVersion: backstage.io/v1alpha1
        kind: Component
        metadata: {{name: {name}}}
        spec: {{type: service, lifecycle: production, owner: {owner}}}
        """
    )


def _token_actor(squad, scopes):
    token, _ = ApiToken.generate(squad=squad, name="bot", scopes=scopes)
    return Actor(token=token, door="api")


def test_member_may_import_for_own_squad_only(db, alice, squad, other_squad):
    actor = Actor(user=alice, door="ui")
    report = backstage.import_catalog(_source(_component("player", "playback")), actor)
    assert report.created == 1
    with pytest.raises(PermissionDenied) as info:
        backstage.import_catalog(_source(_component("finder", "search")), actor)
    assert "extra.yaml: document 1 (component:default/finder)" in str(info.value)
    assert "squad 'search'" in str(info.value)
    # moving an owned service away needs rights on both squads
    with pytest.raises(PermissionDenied):
        backstage.import_catalog(_source(_component("player", "search")), actor)
    assert Service.objects.get(slug="player").owner == squad
    # unchanged entities need no permission at all
    backstage.import_catalog(_source(_component("player", "playback")), Actor(user=alice))


def test_non_admin_cannot_create_squads_or_tribes(db, alice):
    text = "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {name: new-team}\nspec: {type: team, children: []}\n"
    with pytest.raises(PermissionDenied, match="only an org admin may create a new team"):
        backstage.import_catalog(_source(text), Actor(user=alice))
    assert not Squad.objects.filter(slug="new-team").exists()


def test_admin_may_import_anything(db, admin_user, complete_catalog):
    report = run_import(
        [complete_catalog / "all.yaml", complete_catalog / "acme-corp.yaml"], Actor(user=admin_user)
    )
    assert report.created == 59  # 57 + the 2 AiResources, now stored


def test_token_needs_catalog_write_for_the_owning_squad(db, squad, other_squad):
    with pytest.raises(PermissionDenied, match="catalog:write"):
        backstage.import_catalog(
            _source(_component("x", "playback")), _token_actor(squad, ["pipelines:run"])
        )
    with pytest.raises(PermissionDenied):
        backstage.import_catalog(
            _source(_component("x", "search")), _token_actor(squad, ["catalog:write"])
        )
    report = backstage.import_catalog(
        _source(_component("x", "playback")), _token_actor(squad, ["catalog:write"])
    )
    assert report.created == 1


def test_round_trip_of_the_demo_catalog(db):
    """The seeded demo organisation survives export → wipe → import unchanged."""
    import io

    from django.core.management import call_command

    call_command("seed_demo", "--catalog-only", stdout=io.StringIO())
    before = snapshot()
    assert before["services"] and before["dependencies"]
    text = backstage.export_catalog()
    again = backstage.import_catalog(_source(text, "export.yaml"), Actor.command())
    assert again.created == again.updated == 0, again.summary
    wipe_catalog()
    backstage.import_catalog(_source(text, "export.yaml"), Actor.command())
    assert snapshot() == before


def test_group_members_add_people_already_in_the_catalog(db, alice, squad):
    text = textwrap.dedent(
        """\
        apiVersion: backstage.io/v1alpha1
        kind: Group
        metadata: {name: guild}
        spec: {type: team, members: [alice], children: []}
        """
    )
    report = backstage.import_catalog(_source(text), Actor.command())
    assert report.counts["person"] == {"created": 0, "updated": 1, "unchanged": 0}
    assert dict(
        Membership.objects.filter(person__slug="alice").values_list("squad__slug", "role")
    ) == {
        "playback": "lead",
        "guild": "member",
    }
    again = backstage.import_catalog(_source(text), Actor.command())
    assert again.changed == 0


def test_small_import_query_count_does_not_grow_with_the_catalog(db):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from squads.backstage.generate import generate_catalog

    one = _component("one-more", "squad-1").replace(
        "owner: squad-1}", "owner: squad-1, dependsOn: [component:component-5], system: system-2}"
    )
    counts = []
    for total in (300, 900):
        backstage.import_catalog([("gen.yaml", generate_catalog(total))], Actor.command())
        with CaptureQueriesContext(connection) as ctx:
            report = backstage.import_catalog(_source(one), Actor.command())
        assert report.ok
        counts.append(len(ctx.captured_queries))
        Dependency.objects.filter(source__slug="one-more")._raw_delete("default")
        ServiceView.objects.filter(slug="one-more")._raw_delete("default")
        Service.objects.filter(slug="one-more")._raw_delete("default")
    assert counts[0] == counts[1], counts
    # one query per kind written and per scorecard input of the stitched service (the GitHub
    # Actions runs are two inputs: the last default-branch run and "has a pipeline")
    assert counts[0] <= 42, counts


def test_javascript_urls_are_refused_at_import(db):
    import pytest as _pytest

    from portal.actors import Actor
    from squads.backstage import ImportFailed, import_catalog

    doc = """apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: sneaky
  annotations: {backline.io/runbook: "javascript:alert(1)"}
  links: [{url: "javascript:alert(2)", title: x}]
spec: {type: service, lifecycle: production, owner: nobody-team}
"""
    with _pytest.raises(ImportFailed) as exc:
        import_catalog([("sneaky.yaml", doc)], Actor.system("test"))
    fields = {e.field for e in exc.value.errors}
    assert "metadata.links[0].url" in fields
    assert "metadata.annotations[backline.io/runbook]" in fields


def test_full_import_query_count_does_not_grow_with_the_number_of_squads(db):
    """The write and the ``catalog.imported`` events cost a fixed number of queries: one
    subscription read for all squads, not one event query per squad (issue 16)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from portal.models import EventDelivery, EventSubscription
    from squads.backstage.generate import generate_org_catalog

    counts = []
    for teams in (5, 40):
        wipe_catalog()
        Tag.objects.all().delete()
        text = generate_org_catalog(units=2, teams=teams, users=10, components=4 * teams)
        with CaptureQueriesContext(connection) as ctx:
            report = backstage.import_catalog([("org.yaml", text)], Actor.command())
        assert report.created == 2 + teams + 10 + 4 * teams, report.summary
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1], counts
    # the events: one per subscribed squad, naming exactly its created or changed services
    subscribed = ["team-3", "team-7"]
    for slug in subscribed:
        EventSubscription.objects.create(
            squad=Squad.objects.get(slug=slug),
            name="bot",
            url="http://127.0.0.1:9/x",
            secret="s" * 10,
            event_types=["catalog.imported"],
        )
    changed = generate_org_catalog(units=2, teams=40, users=10, components=160).replace(
        "description: Component ", "description: Changed component "
    )
    backstage.import_catalog([("org.yaml", changed)], Actor.command())
    got = {d.payload["squad"]: d.payload["data"]["services"] for d in EventDelivery.objects.all()}
    assert got == {
        slug: sorted(Service.objects.filter(owner__slug=slug).values_list("slug", flat=True))
        for slug in subscribed
    }
    assert all(len(v) == 4 for v in got.values()), got
