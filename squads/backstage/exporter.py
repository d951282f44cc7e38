"""Export the whole catalog as multi-document Backstage YAML.

An entity imported from a descriptor is exported as that descriptor (every field, placeholder
and relation as written), with only what changed in Backline since the import written over it
(see ``render.overlay``); entities created in Backline are rendered from their rows; entities of
kinds Backline does not model are exported as stored. Normalisation: mappings keep the key
order of the original, YAML comments and anchors are not kept, and values YAML reads as dates
come back as strings."""

import json
from collections import defaultdict

import yaml

from portal.urlsecrets import redact_embedded_credentials
from squads.models import Dependency, ForeignEntity, Membership, Service

from .render import overlay, render
from .shape import row_shape
from .tables import TABLES


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):
    pass


def _str_presenter(dumper, data):
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str_presenter)

ROWS = tuple((t.kind, t.model) for t in TABLES)


class _Lookups:
    """What ``shape.row_shape`` needs, for the whole catalog (a fixed number of queries)."""

    def __init__(self, rows):
        by_id = {kind: {o.pk: o.slug for o in objs} for kind, objs in rows.items()}
        self.tribe_by_id, self.squad_by_id = by_id["tribe"], by_id["squad"]
        self.domain_by_id, self.system_by_id = by_id["domain"], by_id["system"]
        person_slug, api_slug = by_id["person"], by_id["api"]
        service_slug, resource_slug = by_id["component"], by_id["resource"]
        self.members = defaultdict(dict)
        for pid, sid, role in Membership.objects.values_list("person_id", "squad_id", "role"):
            self.members[person_slug[pid]][self.squad_by_id[sid]] = (None, role)
        self.db_tags = defaultdict(dict)
        for sid, name in Service.tags.through.objects.values_list("service_id", "tag__name"):
            self.db_tags[service_slug[sid]][name] = None
        self.db_provides, self.db_consumes = defaultdict(dict), defaultdict(dict)
        for rel, target in (
            (Service.provides_apis.through, self.db_provides),
            (Service.consumes_apis.through, self.db_consumes),
        ):
            for sid, aid in rel.objects.values_list("service_id", "api_id"):
                target[service_slug[sid]][api_slug[aid]] = None
        self.db_deps = defaultdict(dict)
        for sid, ts, tr in Dependency.objects.values_list(
            "source_id", "target_service_id", "target_resource_id"
        ):
            key = ("component", service_slug[ts]) if ts else ("resource", resource_slug[tr])
            self.db_deps[service_slug[sid]][key] = None

    def memberships_of(self, slug):
        return self.members.get(slug, {})


def group_children(parents) -> dict:
    """{child: parent} → {parent: [children]}."""
    children = defaultdict(list)
    for child, parent in parents.items():
        if parent:
            children[parent].append(child)
    return children


def as_exported(kind, slug, shape, children, obj=None) -> dict:
    """The descriptor exported for one row (``shape`` form; ``obj`` gives the stored original
    and what Backline rendered right after importing it)."""
    now = render(kind, slug, shape, children)
    original = getattr(obj, "backstage_entity", "") if obj is not None else ""
    seen = getattr(obj, "backstage_seen", "") if obj is not None else ""
    if not original or not seen:
        return now
    return overlay(json.loads(original), json.loads(seen), now)


def catalog_entities() -> list[dict]:
    """Every catalog entity as a Backstage descriptor (dicts), in a stable order."""
    rows = {kind: list(model.objects.order_by("slug")) for kind, model in ROWS}
    lk = _Lookups(rows)
    parents = {t.slug: lk.tribe_by_id.get(t.parent_id) for t in rows["tribe"]}
    for s in rows["squad"]:
        parents[s.slug] = lk.squad_by_id.get(s.parent_id) or lk.tribe_by_id.get(s.tribe_id)
    children = group_children(parents)
    out = []
    for kind, objs in rows.items():
        for obj in objs:
            out.append(as_exported(kind, obj.slug, row_shape(kind, obj, lk), children, obj))
    out += [json.loads(f.backstage_entity) for f in ForeignEntity.objects.all()]
    return out


def export_catalog() -> str:
    """The whole catalog as multi-document Backstage YAML."""
    entities = [_no_credentials(e) for e in catalog_entities()]
    return yaml.dump_all(entities, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def _no_credentials(value):
    """``value`` with every ``scheme://user:password@`` in its strings redacted: an imported
    descriptor is written back as it came, except a credential it carried."""
    if isinstance(value, str):
        return redact_embedded_credentials(value)
    if isinstance(value, dict):
        return {k: _no_credentials(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_credentials(v) for v in value]
    return value
