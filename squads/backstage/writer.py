"""Writing an import plan: COPY (PostgreSQL) / bulk_create for new rows, bulk_update for changed
ones, set differences for relations."""

from django.db import connection
from django.utils import timezone

from portal.lookups import many
from squads.bulk import attnames as _attnames
from squads.bulk import insert as _insert
from squads.models import Dependency, Membership, Service, Tag

from . import foreign
from .constants import BATCH
from .tables import TABLES


def _apply(obj, values, fks):
    for k, v in values.items():
        if k in fks:
            setattr(obj, f"{k}_id", fks[k].get(v) if v else None)
        else:
            setattr(obj, k, v)
    return obj


def _known_ids(imp, table):
    if table.kind in ("tribe", "squad"):  # loaded in full
        return {s: o.pk for s, o in getattr(imp, table.rows).items()}
    # every row's id, not only the rows the import names
    return dict(imp.ids[table.entity_kind])


def _create(imp, table, ids, fk_maps, field_names):
    """Insert the new rows (``late_fks`` left out), then set those once every row exists."""
    model, late_fks = table.model, table.late_fks
    create = imp.plan[table.kind]["create"]
    rows = []
    written = set(field_names) - set(late_fks)
    for slug, want in create.items():
        values = {k: v for k, v in want.items() if k in written}
        rows.append({"slug": slug, **_attnames(values, fk_maps)})
    _insert(model, rows)
    if create:
        ids.update(model.objects.filter(slug__any=many(create)).values_list("slug", "pk"))
    fk_maps = {**fk_maps, **{k: ids for k in late_fks}}
    late_slugs = [s for s, w in create.items() if any(w[k] for k in late_fks)]
    if late_slugs:
        late = [
            _apply(o, {k: create[o.slug][k] for k in late_fks}, fk_maps)
            for o in model.objects.filter(slug__any=many(late_slugs))
        ]
        model.objects.bulk_update(late, list(late_fks), batch_size=BATCH)
    return fk_maps


def _update(imp, table, fk_maps, field_names):
    db = getattr(imp, table.rows)
    changed = [
        _apply(db[slug], {k: v for k, v in want.items() if k in field_names}, fk_maps)
        for slug, (want, _) in imp.plan[table.kind]["update"].items()
    ]
    if not changed:
        return
    names = list(field_names)
    if table.model is Service:
        names.append("updated_at")
        now = timezone.now()
        for o in changed:
            o.updated_at = now
    table.model.objects.bulk_update(changed, names, batch_size=200)


def _upsert(imp, table, fk_maps):
    """Create new rows and update changed ones. Returns slug → id for the table."""
    field_names = [*table.fields, "backstage_entity", "backstage_seen"]
    ids = _known_ids(imp, table)
    fk_maps = _create(imp, table, ids, fk_maps, field_names)
    _update(imp, table, fk_maps, field_names)
    return ids


def _write_rows(imp):
    """Every table in order; returns kind → {slug: id}."""
    ids = {}
    for table in TABLES:
        ids[table.kind] = _upsert(imp, table, {k: ids[t] for k, t in table.fks.items()})
    return ids


def touched(plan, kind):
    """slug → desired row of every row of ``kind`` the plan creates or changes."""
    return {**plan[kind]["create"], **{s: w for s, (w, _) in plan[kind]["update"].items()}}


def _write_memberships(imp, person_ids, squad_ids):
    m_new, m_update, m_delete = [], [], []
    for slug, want in touched(imp.plan, "person").items():
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
    Membership.objects.filter(pk__any=m_delete).delete()
    Membership.objects.bulk_update(m_update, ["role"], batch_size=BATCH)
    _insert(Membership, m_new)


def _add_missing_tags(imp, touched):
    all_tags = {t for w in touched.values() for t in w["tags"]}
    missing_tags = sorted(all_tags - set(imp.tag_ids))
    if missing_tags:
        Tag.objects.bulk_create(
            [Tag(name=t) for t in missing_tags], batch_size=BATCH, ignore_conflicts=True
        )
        imp.tag_ids.update(Tag.objects.filter(name__in=missing_tags).values_list("name", "pk"))


def _write_service_links(imp, touched, service_ids, api_ids):
    """A service's tags, provided and consumed APIs: set differences on the through tables."""
    _add_missing_tags(imp, touched)
    for attr, key, current_map, target_ids, target_field in (  # (SERVICE_LINKS)
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
        through.objects.filter(pk__any=delete).delete()
        _insert(through, new)


def _write_dependencies(imp, touched, service_ids, resource_ids):
    new, delete = [], []
    for slug, want in touched.items():
        current = imp.db_deps.get(slug, {})
        delete += [did for k, did in current.items() if k not in want["deps"]]
        for kind, target in want["deps"]:
            if (kind, target) in current:
                continue
            component = kind == "component"
            new.append(
                {
                    "source_id": service_ids[slug],
                    "target_service_id": service_ids[target] if component else None,
                    "target_resource_id": None if component else resource_ids[target],
                }
            )
    Dependency.objects.filter(pk__any=delete).delete()
    _insert(Dependency, new)


SERVICE_LINKS = ("tags", "provides_apis", "consumes_apis")
ANALYZE_AFTER = 1000  # rows created: refresh the planner's statistics, as autovacuum would


def _analyze(imp):
    """After a large bulk load the planner still believes the tables are empty (autovacuum,
    when on at all, comes later): the next queries, stitching included, would plan for that."""
    created = sum(len(imp.plan[t.kind]["create"]) for t in TABLES)
    if connection.vendor != "postgresql" or created < ANALYZE_AFTER:
        return
    models = [t.model for t in TABLES] + [Dependency, Membership]
    models += [getattr(Service, a).through for a in SERVICE_LINKS]
    with connection.cursor() as cur:
        cur.execute(f"ANALYZE {', '.join(_analyzed(m) for m in models)}")


def _analyzed(model):
    """``model``'s table and its keyed and indexed columns: the row count and the statistics
    plans choose by, not those of every text and JSON column (Service's took 3/4 of its
    ANALYZE; they come with the next full ANALYZE, as autovacuum would)."""
    indexed = {n for index in model._meta.indexes for n in index.fields}
    columns = [
        f.column
        for f in model._meta.concrete_fields
        if f.primary_key or f.unique or f.db_index or f.is_relation or f.name in indexed
    ]
    return f"{model._meta.db_table} ({', '.join(columns)})"


def write(imp):
    """Apply ``imp.plan`` with bulk operations (inside the caller's transaction)."""
    ids = _write_rows(imp)
    _write_memberships(imp, ids["person"], ids["squad"])
    services = touched(imp.plan, "component")
    _write_service_links(imp, services, ids["component"], ids["api"])
    _write_dependencies(imp, services, ids["component"], ids["resource"])
    foreign.write(imp, ids["squad"], _insert)
    _analyze(imp)


def affected_services(plan):
    """Ids of the services whose read form the plan changes: the components written, the
    services depending on them (a lifecycle feeds their scorecard) and those they depend on
    (whose documents list their dependents), and those owned by the
    squads, tribes and systems written or by squads whose memberships changed (leads)."""

    components = list(touched(plan, "component"))
    branches = (  # one indexed query per kind the plan writes (an OR over joins scans all)
        ("component", "slug"),
        ("component", "dependencies__target_service__slug"),
        ("component", "dependents__source__slug"),  # their "dependents" lists
        ("squad", "owner__slug"),
        ("tribe", "owner__tribe__slug"),
        ("system", "system__slug"),
        ("person", "owner__memberships__person__slug"),
    )
    ids = set()
    for kind, lookup in branches:
        slugs = components if kind == "component" else list(touched(plan, kind))
        if slugs:
            qs = Service.objects.filter(**{f"{lookup}__any": many(slugs)}).order_by()
            ids.update(qs.values_list("pk", flat=True))
    return ids
