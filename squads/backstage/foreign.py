"""Entities of kinds Backline does not model (Template, Environment, AiResource, custom kinds):
stored as written (``ForeignEntity``) and exported again; an owning team, when the owner is
one, decides who may change them."""

import json

from portal.urlsecrets import redact_embedded_credentials
from squads.models import ForeignEntity

from .refs import RefError, parse_ref, slug_for


def dumps(value) -> str:
    """JSON text as stored (key order kept; YAML dates become strings)."""
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


def document(e) -> str:
    """The entity's descriptor as stored: as written, except a ``scheme://user:password@`` in
    it (that credential reaches the database only encrypted, in ``repository_url``)."""
    return redact_embedded_credentials(getattr(e, "text", None) or dumps(e.doc.data))


def key(e):
    return (e.kind, e.namespace.lower(), e.name.lower())


def _owner(imp, e):
    try:
        kind, ns, name = parse_ref(e.spec.get("owner"), "group", e.namespace)
    except RefError:
        return None
    slug = slug_for(ns, name)
    if kind == "group" and imp.group_type(slug) == "squad":
        return slug
    if kind == "user" and (slug in imp.person_desired or slug in imp.ids["user"]):
        squads = imp.person_squads(slug)
        return squads[0] if squads else None
    return None


def build(imp):
    imp.foreign_desired = {
        key: {"owner": _owner(imp, e), "backstage_entity": document(e)}
        for key, e in imp.foreign.items()
    }


def diff(imp):
    """{"create": {key: desired}, "update": {key: (desired, current)}} and the report counts."""
    create, update = {}, {}
    counts = imp.report.counts["other"]
    kinds = {k for k, _, _ in imp.foreign_desired}
    imp.db_foreign = {
        (f.kind, f.namespace, f.name): f for f in ForeignEntity.objects.filter(kind__in=kinds)
    }
    squad_slug = imp.squad_by_id
    for key, want in imp.foreign_desired.items():
        obj = imp.db_foreign.get(key)
        if obj is None:
            create[key] = want
            counts["created"] += 1
            continue
        have = {"owner": squad_slug.get(obj.owner_id), "backstage_entity": obj.backstage_entity}
        if have == want:
            counts["unchanged"] += 1
        else:
            update[key] = (want, have)
            counts["updated"] += 1
    return {"create": create, "update": update}


def write(imp, squad_ids, insert):
    plan = imp.plan["foreign"]
    rows = [
        {
            "kind": kind,
            "namespace": ns,
            "name": name,
            "owner_id": squad_ids.get(want["owner"]) if want["owner"] else None,
            "backstage_entity": want["backstage_entity"],
        }
        for (kind, ns, name), want in plan["create"].items()
    ]
    insert(ForeignEntity, rows)
    changed = []
    for key, (want, _) in plan["update"].items():
        obj = imp.db_foreign[key]
        obj.owner_id = squad_ids.get(want["owner"]) if want["owner"] else None
        obj.backstage_entity = want["backstage_entity"]
        changed.append(obj)
    ForeignEntity.objects.bulk_update(changed, ["owner", "backstage_entity"], batch_size=200)
