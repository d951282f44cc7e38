"""A catalog row in the shape the importer builds (foreign keys as slugs): the importer compares
it with what a descriptor asks for, the exporter renders it back to a descriptor."""


def _group_shape(kind, obj, t, s):
    if kind == "tribe":
        return {
            "name": obj.name,
            "description": obj.description,
            "kind": obj.kind,
            "parent": t.get(obj.parent_id),
            "email": obj.email,
            "picture": obj.picture,
            "links": obj.links,
        }
    return {
        "name": obj.name,
        "mission": obj.mission,
        "tribe": t.get(obj.tribe_id),
        "parent": s.get(obj.parent_id),
        "chat_channel": obj.chat_channel,
        "oncall_contact": obj.oncall_contact,
        "email": obj.email,
        "picture": obj.picture,
        "links": obj.links,
    }


def row_shape(kind, obj, lk):
    """``lk``: slug maps by id (``tribe_by_id``, ``squad_by_id``, ``domain_by_id``,
    ``system_by_id``), ``memberships_of(slug)`` and the service relation maps
    (``db_tags``, ``db_provides``, ``db_consumes``, ``db_deps``: slug → {target: id})."""
    t, s, d, sy = lk.tribe_by_id, lk.squad_by_id, lk.domain_by_id, lk.system_by_id
    origin = {"backstage_entity": obj.backstage_entity}
    if kind in ("tribe", "squad"):
        return {**_group_shape(kind, obj, t, s), **origin}
    if kind == "person":
        memberships = lk.memberships_of(obj.slug).items()
        return {
            "name": obj.name,
            "email": obj.email,
            "picture": obj.picture,
            "memberships": frozenset((sq, r) for sq, (_, r) in memberships),
            **origin,
        }
    base = {"name": obj.name, "description": obj.description}
    owned = {"owner": s.get(obj.owner_id), "tags": getattr(obj, "tags", None)}
    if kind in ("domain", "system"):
        extra = {"domain": d.get(obj.domain_id)} if kind == "system" else {}
        return {
            **base,
            **owned,
            "owner_tribe": t.get(obj.owner_tribe_id),
            **extra,
            "links": obj.links,
            **origin,
        }
    if kind == "api":
        return {
            **base,
            **owned,
            "type": obj.type,
            "lifecycle": obj.lifecycle,
            "lifecycle_raw": obj.lifecycle_raw,
            "system": sy.get(obj.system_id),
            "definition": obj.definition,
            "links": obj.links,
            **origin,
        }
    if kind == "resource":
        return {
            **base,
            **owned,
            "type": obj.type,
            "system": sy.get(obj.system_id),
            "links": obj.links,
            **origin,
        }
    slug = obj.slug
    return {
        **base,
        "owner": s.get(obj.owner_id),
        "system": sy.get(obj.system_id),
        "type": obj.type,
        "lifecycle": obj.lifecycle,
        "lifecycle_raw": obj.lifecycle_raw,
        "tier": obj.tier,
        "repository_url": obj.repository_url,
        "default_branch": obj.default_branch,
        "runbook_url": obj.runbook_url,
        "oncall": obj.oncall,
        "links": obj.links,
        "annotations": obj.annotations,
        "tags": frozenset(lk.db_tags.get(slug, {})),
        "provides": frozenset(lk.db_provides.get(slug, {})),
        "consumes": frozenset(lk.db_consumes.get(slug, {})),
        "deps": frozenset(lk.db_deps.get(slug, {})),
        **origin,
    }


def same(want, have):
    """Whether a desired row equals the stored one (``backstage_seen`` is bookkeeping)."""
    return all(have.get(k) == v for k, v in want.items() if k != "backstage_seen")
