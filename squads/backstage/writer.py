"""Writing an import plan: COPY (PostgreSQL) / bulk_create for new rows, bulk_update for changed
ones, set differences for relations."""

from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.utils import timezone

from squads.models import (
    Api,
    Dependency,
    Domain,
    Membership,
    Person,
    Resource,
    Service,
    Squad,
    System,
    Tag,
    Tribe,
)
from squads.services import SERVICE_DESCRIPTOR_FIELDS

from . import foreign
from .constants import BATCH


# --- fast inserts -------------------------------------------------------------------------------
def _attnames(values, fk_maps):
    """{"owner": "team-a"} → {"owner_id": 7} for the FKs in ``fk_maps``."""
    out = {}
    for k, v in values.items():
        if k in fk_maps:
            out[f"{k}_id"] = fk_maps[k].get(v) if v else None
        else:
            out[k] = v
    return out


def _insert(model, rows):
    """Insert plain rows (dicts keyed by attname); unspecified columns get the model default.
    PostgreSQL: one COPY per table; elsewhere: bulk_create."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_create([model(**r) for r in rows], batch_size=BATCH)
        return
    now = timezone.now()
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    defaults = {}
    for f in fields:
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            defaults[f.attname] = now
        else:
            defaults[f.attname] = f.get_default()
    conn = connections[DEFAULT_DB_ALIAS]
    # Only JSON and datetime values need adapting; ints, strings and None go as they are.
    prep = [isinstance(f, (models.JSONField, models.DateTimeField)) for f in fields]
    cols = [
        (f.attname, defaults[f.attname], f if p else None)
        for f, p in zip(fields, prep, strict=True)
    ]
    qn = conn.ops.quote_name
    sql = f"COPY {qn(model._meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) FROM STDIN"
    with conn.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for r in rows:
            copy.write_row(
                [
                    f.get_db_prep_save(r.get(name, default), conn) if f else r.get(name, default)
                    for name, default, f in cols
                ]
            )


def write(imp):
    """Apply ``imp.plan`` with bulk operations (inside the caller's transaction)."""
    plan = imp.plan

    def apply(obj, values, fks):
        for k, v in values.items():
            if k in fks:
                setattr(obj, f"{k}_id", fks[k].get(v) if v else None)
            else:
                setattr(obj, k, v)
        return obj

    def upsert(model, kind, db, fk_maps, field_names, *, late_fks=()):
        """Create new rows and update changed ones; FKs in ``late_fks`` point to the same
        table and are set after every row exists. Returns slug → id for the table."""
        field_names = [*field_names, "backstage_entity", "backstage_seen"]
        if kind in ("tribe", "squad"):  # loaded in full
            ids = {s: o.pk for s, o in db.items()}
        else:  # every row's id, not only the rows the import names
            ids = dict(imp.ids["user" if kind == "person" else kind])
        create = plan[kind]["create"]
        rows = []
        for slug, want in create.items():
            values = {k: v for k, v in want.items() if k in field_names and k not in late_fks}
            rows.append({"slug": slug, **_attnames(values, fk_maps)})
        _insert(model, rows)
        if create:
            ids.update(model.objects.filter(slug__in=list(create)).values_list("slug", "pk"))
        fk_maps = {**fk_maps, **{k: ids for k in late_fks}}
        late_slugs = [s for s, w in create.items() if any(w[k] for k in late_fks)]
        if late_slugs:
            late = [
                apply(o, {k: create[o.slug][k] for k in late_fks}, fk_maps)
                for o in model.objects.filter(slug__in=late_slugs)
            ]
            model.objects.bulk_update(late, list(late_fks), batch_size=BATCH)
        changed = [
            apply(db[slug], {k: v for k, v in want.items() if k in field_names}, fk_maps)
            for slug, (want, _) in plan[kind]["update"].items()
        ]
        if changed:
            names = list(field_names)
            if model is Service:
                names.append("updated_at")
                now = timezone.now()
                for o in changed:
                    o.updated_at = now
            model.objects.bulk_update(changed, names, batch_size=200)
        return ids

    tribe_ids = upsert(
        Tribe,
        "tribe",
        imp.db_tribes,
        {},
        ["name", "description", "kind", "parent", "email", "picture", "links"],
        late_fks=("parent",),
    )
    squad_ids = upsert(
        Squad,
        "squad",
        imp.db_squads,
        {"tribe": tribe_ids},
        [
            "name",
            "mission",
            "tribe",
            "parent",
            "chat_channel",
            "oncall_contact",
            "email",
            "picture",
            "links",
        ],
        late_fks=("parent",),
    )
    person_ids = upsert(Person, "person", imp.db_persons, {}, ["name", "email", "picture"])
    domain_ids = upsert(
        Domain,
        "domain",
        imp.db_domains,
        {"owner": squad_ids, "owner_tribe": tribe_ids},
        ["name", "description", "owner", "owner_tribe", "tags", "links"],
    )
    system_ids = upsert(
        System,
        "system",
        imp.db_systems,
        {"owner": squad_ids, "owner_tribe": tribe_ids, "domain": domain_ids},
        ["name", "description", "owner", "owner_tribe", "domain", "tags", "links"],
    )
    api_ids = upsert(
        Api,
        "api",
        imp.db_apis,
        {"owner": squad_ids, "system": system_ids},
        [
            "name",
            "description",
            "type",
            "lifecycle",
            "lifecycle_raw",
            "owner",
            "system",
            "definition",
            "tags",
            "links",
        ],
    )
    resource_ids = upsert(
        Resource,
        "resource",
        imp.db_resources,
        {"owner": squad_ids, "system": system_ids},
        ["name", "description", "type", "owner", "system", "tags", "links"],
    )
    service_ids = upsert(
        Service,
        "component",
        imp.db_services,
        {"owner": squad_ids, "system": system_ids},
        [*SERVICE_DESCRIPTOR_FIELDS, "lifecycle_raw"],
    )
    # memberships
    m_new, m_update, m_delete = [], [], []
    for slug, want in {
        **plan["person"]["create"],
        **{s: w for s, (w, _) in plan["person"]["update"].items()},
    }.items():
        current = imp.memberships_of(slug)
        wanted = dict(want["memberships"])
        for sq, (mid, role) in current.items():
            if sq not in wanted:
                m_delete.append(mid)
            elif wanted[sq] != role:
                m_update.append(Membership(pk=mid, role=wanted[sq]))
        for sq, role in wanted.items():
            if sq not in current:
                m_new.append(
                    {"person_id": person_ids[slug], "squad_id": squad_ids[sq], "role": role}
                )
    Membership.objects.filter(pk__in=m_delete).delete()
    Membership.objects.bulk_update(m_update, ["role"], batch_size=BATCH)
    _insert(Membership, m_new)
    # service relations
    touched = {
        **plan["component"]["create"],
        **{s: w for s, (w, _) in plan["component"]["update"].items()},
    }
    all_tags = {t for w in touched.values() for t in w["tags"]}
    missing_tags = sorted(all_tags - set(imp.tag_ids))
    if missing_tags:
        Tag.objects.bulk_create(
            [Tag(name=t) for t in missing_tags], batch_size=BATCH, ignore_conflicts=True
        )
        imp.tag_ids.update(Tag.objects.filter(name__in=missing_tags).values_list("name", "pk"))
    for attr, key, current_map, target_ids, target_field in (
        ("tags", "tags", imp.db_tags, imp.tag_ids, "tag_id"),
        ("provides_apis", "provides", imp.db_provides, api_ids, "api_id"),
        ("consumes_apis", "consumes", imp.db_consumes, api_ids, "api_id"),
    ):
        through = getattr(Service, attr).through
        new, delete = [], []
        for slug, want in touched.items():
            current = current_map.get(slug, {})
            delete += [tid for name, tid in current.items() if name not in want[key]]
            new += [
                {"service_id": service_ids[slug], target_field: target_ids[n]}
                for n in want[key]
                if n not in current
            ]
        through.objects.filter(pk__in=delete).delete()
        _insert(through, new)
    new, delete = [], []
    for slug, want in touched.items():
        current = imp.db_deps.get(slug, {})
        delete += [did for k, did in current.items() if k not in want["deps"]]
        for kind, target in want["deps"]:
            if (kind, target) in current:
                continue
            if kind == "component":
                new.append(
                    {
                        "source_id": service_ids[slug],
                        "target_service_id": service_ids[target],
                        "target_resource_id": None,
                    }
                )
            else:
                new.append(
                    {
                        "source_id": service_ids[slug],
                        "target_service_id": None,
                        "target_resource_id": resource_ids[target],
                    }
                )
    Dependency.objects.filter(pk__in=delete).delete()
    _insert(Dependency, new)
    foreign.write(imp, squad_ids, _insert)
