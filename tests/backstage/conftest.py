import shutil
import textwrap

import pytest

from portal.actors import Actor
from squads import backstage
from squads.models import (
    Api,
    Dependency,
    Domain,
    ForeignEntity,
    Membership,
    Person,
    Resource,
    Service,
    ServiceView,
    Squad,
    System,
    Tribe,
)

HELLO_WORLD_API = textwrap.dedent(
    """\
    apiVersion: backstage.io/v1alpha1
    kind: API
    metadata:
      name: hello-world
      description: Hello World example for gRPC
    spec:
      type: grpc
      lifecycle: deprecated
      owner: team-c
      definition: |
        syntax = "proto3";
        service Greeter { rpc SayHello (HelloRequest) returns (HelloReply) {} }
    """
)


@pytest.fixture
def catalog_dir(shared_data):
    return shared_data / "backstage-catalog"


@pytest.fixture
def complete_catalog(catalog_dir, tmp_path):
    """A copy of the shared sample with the one missing file added: imports cleanly."""
    dest = tmp_path / "catalog"
    shutil.copytree(catalog_dir, dest)
    (dest / "apis" / "hello-world-api.yaml").write_text(HELLO_WORLD_API)
    return dest


def run_import(paths, actor=None, **kwargs):
    return backstage.import_catalog(
        backstage.load_sources(paths), actor or Actor.command(), **kwargs
    )


def snapshot():
    """The whole catalog, normalized to slugs (no ids, no timestamps)."""
    t = {x.pk: x.slug for x in Tribe.objects.all()}
    s = {x.pk: x.slug for x in Squad.objects.all()}
    sy = {x.pk: x.slug for x in System.objects.all()}
    d = {x.pk: x.slug for x in Domain.objects.all()}
    snap = {
        "tribes": {
            x.slug: (x.name, x.description, x.kind, t.get(x.parent_id), x.email, x.picture, x.links)
            for x in Tribe.objects.all()
        },
        "squads": {
            x.slug: (
                x.name,
                x.mission,
                t.get(x.tribe_id),
                s.get(x.parent_id),
                x.chat_channel,
                x.oncall_contact,
                x.email,
                x.picture,
                x.links,
            )
            for x in Squad.objects.all()
        },
        "people": {x.slug: (x.name, x.email, x.picture) for x in Person.objects.all()},
        "memberships": sorted(
            Membership.objects.values_list("person__slug", "squad__slug", "role")
        ),
        "domains": {
            x.slug: (
                x.name,
                x.description,
                s.get(x.owner_id),
                t.get(x.owner_tribe_id),
                x.tags,
                x.links,
            )
            for x in Domain.objects.all()
        },
        "systems": {
            x.slug: (
                x.name,
                x.description,
                s.get(x.owner_id),
                t.get(x.owner_tribe_id),
                d.get(x.domain_id),
                x.tags,
                x.links,
            )
            for x in System.objects.all()
        },
        "apis": {
            x.slug: (
                x.name,
                x.description,
                x.type,
                x.lifecycle,
                s.get(x.owner_id),
                sy.get(x.system_id),
                x.definition,
                x.tags,
                x.links,
            )
            for x in Api.objects.all()
        },
        "resources": {
            x.slug: (
                x.name,
                x.description,
                x.type,
                s.get(x.owner_id),
                sy.get(x.system_id),
                x.tags,
                x.links,
            )
            for x in Resource.objects.all()
        },
        "services": {
            x.slug: (
                x.name,
                x.description,
                s.get(x.owner_id),
                sy.get(x.system_id),
                x.type,
                x.lifecycle,
                x.tier,
                x.repository_url,
                x.default_branch,
                x.runbook_url,
                x.oncall,
                x.links,
                x.annotations,
                sorted(x.tags.values_list("name", flat=True)),
                sorted(x.provides_apis.values_list("slug", flat=True)),
                sorted(x.consumes_apis.values_list("slug", flat=True)),
            )
            for x in Service.objects.all()
        },
        "dependencies": sorted(
            (src, ts or "", tr or "")
            for src, ts, tr in Dependency.objects.values_list(
                "source__slug", "target_service__slug", "target_resource__slug"
            )
        ),
    }
    return snap


def wipe_catalog():
    """Delete the whole catalog with plain DELETEs (no cascade collection into other apps'
    tables, whose models may be mid-change in a shared tree)."""
    for model in (
        ServiceView,
        Dependency,
        Service.tags.through,
        Service.provides_apis.through,
        Service.consumes_apis.through,
        Membership,
        ForeignEntity,
        Service,
        Api,
        Resource,
        System,
        Domain,
        Person,
    ):
        model.objects.all()._raw_delete(model.objects.db)
    Squad.objects.update(parent=None)
    Squad.objects.all()._raw_delete(Squad.objects.db)
    Tribe.objects.update(parent=None)
    Tribe.objects.all()._raw_delete(Tribe.objects.db)
