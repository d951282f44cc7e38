"""A catalog row in the shape the importer builds (foreign keys as slugs): the importer compares
it with what a descriptor asks for, the exporter renders it back to a descriptor."""


def _group_shape(kind, obj, lk):
    t, s = lk.tribe_by_id, lk.squad_by_id
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


def _person_shape(kind, obj, lk):
    memberships = lk.memberships_of(obj.slug).items()
    return {
        "name": obj.name,
        "email": obj.email,
        "picture": obj.picture,
        "memberships": frozenset((sq, r) for sq, (_, r) in memberships),
    }


def _owned(obj, lk):
    """The fields domains, systems, APIs and resources share."""
    return {
        "name": obj.name,
        "description": obj.description,
        "owner": lk.squad_by_id.get(obj.owner_id),
        "tags": getattr(obj, "tags", None),
    }


def _domain_shape(kind, obj, lk):
    extra = {"domain": lk.domain_by_id.get(obj.domain_id)} if kind == "system" else {}
    return {
        **_owned(obj, lk),
        "owner_tribe": lk.tribe_by_id.get(obj.owner_tribe_id),
        **extra,
        "links": obj.links,
    }


def _api_shape(kind, obj, lk):
    return {
        **_owned(obj, lk),
        "type": obj.type,
        "lifecycle": obj.lifecycle,
        "lifecycle_raw": obj.lifecycle_raw,
        "system": lk.system_by_id.get(obj.system_id),
        "definition": obj.definition,
        "links": obj.links,
    }


def _resource_shape(kind, obj, lk):
    return {
        **_owned(obj, lk),
        "type": obj.type,
        "system": lk.system_by_id.get(obj.system_id),
        "links": obj.links,
    }


def _service_shape(kind, obj, lk):
    slug = obj.slug
    return {
        "name": obj.name,
        "description": obj.description,
        "owner": lk.squad_by_id.get(obj.owner_id),
        "system": lk.system_by_id.get(obj.system_id),
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
    }


_SHAPES = {
    "tribe": _group_shape,
    "squad": _group_shape,
    "person": _person_shape,
    "domain": _domain_shape,
    "system": _domain_shape,
    "api": _api_shape,
    "resource": _resource_shape,
}


def row_shape(kind, obj, lk):
    """``lk``: slug maps by id (``tribe_by_id``, ``squad_by_id``, ``domain_by_id``,
    ``system_by_id``), ``memberships_of(slug)`` and the service relation maps
    (``db_tags``, ``db_provides``, ``db_consumes``, ``db_deps``: slug → {target: id})."""
    shape = _SHAPES.get(kind, _service_shape)
    return {**shape(kind, obj, lk), "backstage_entity": obj.backstage_entity}


def same(want, have):
    """Whether a desired row equals the stored one (``backstage_seen`` is bookkeeping)."""
    return all(have.get(k) == v for k, v in want.items() if k != "backstage_seen")
