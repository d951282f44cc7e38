"""Import Backstage descriptor files into the catalog: all-or-nothing, idempotent, bulk.

Phases: read every document (following Location targets) → build one desired row per entity,
collecting every error with its file, document, entity and field → compare with what the
database holds (a handful of queries, whatever the size) → check permissions → write with bulk
operations inside one transaction.
"""

from collections import defaultdict

from django.core.exceptions import PermissionDenied
from django.db import connection, transaction

from portal import audit, events
from portal.lookups import many
from squads import stitch
from squads.cache import CATALOG
from squads.models import Dependency, Membership, Person, Service, Squad, Tag, Tribe

from . import foreign, gcpause, ownership, writer
from .build import EntityBuilder
from .constants import ENTITY_KINDS
from .reading import Entity, YamlLoader, _Ctx, _read_documents
from .refs import DEFAULT_NAMESPACE, ref_of_slug, ref_string, slug_for, valid_name, valid_namespace
from .report import ImportFailed, ImportIssue, ImportReport
from .schema import validate_document
from .shape import row_shape, same
from .tables import ENTITY_TABLES

__all__ = ["ImportFailed", "ImportIssue", "ImportReport", "YamlLoader", "import_catalog"]


# --- the importer -------------------------------------------------------------------------------
class _Importer(EntityBuilder):
    def __init__(self, sources, actor, dry_run):
        self.actor = actor
        self.report = ImportReport(dry_run=dry_run)
        self.ctx = _Ctx(self.report)
        self.sources = sources

    # ---- phase 1: documents → entities
    def parse(self):
        self.entities = {k: {} for k in ENTITY_KINDS}  # kind → slug → Entity
        self.foreign = {}  # (kind, namespace, name), lower-case → Entity of an unmodelled kind
        for doc in _read_documents(self.sources, self.ctx):
            e = self._parse_doc(doc)
            if e is None:
                continue
            table = self.entities.get(e.kind, self.foreign)
            key = e.slug if e.kind in self.entities else foreign.key(e)
            first = table.get(key)
            if first is not None:
                self.ctx.error(
                    doc,
                    e,
                    "metadata.name",
                    f"{e.ref} is defined twice (also in {first.doc.file}, document {first.doc.index})",
                )
                continue
            table[key] = e

    def _parse_doc(self, doc):
        """One document → an Entity (None when it is not one, or is refused)."""
        ctx, data = self.ctx, doc.data
        if not isinstance(data, dict):
            ctx.error(doc, "", "", "a document must be a mapping (an entity)")
            return None
        if "apiVersion" not in data and "kind" not in data:
            ctx.warn(doc, "", "not a Backstage entity (no apiVersion or kind); skipped")
            return None
        kind = data.get("kind")
        if not isinstance(kind, str) or not kind:
            ctx.error(doc, "", "kind", "is required")
            return None
        metadata = data.get("metadata")
        if not isinstance(metadata, dict):
            ctx.error(doc, kind.lower(), "metadata", "is required and must be a mapping")
            return None
        name = metadata.get("name")
        namespace = metadata.get("namespace") or DEFAULT_NAMESPACE
        label = ref_string(kind.lower(), namespace, name) if name else kind.lower()
        text = foreign.dumps(data)
        problems = validate_document(data, text)
        for path, message in problems:
            ctx.error(doc, label, path, message)
        if not valid_name(name):
            if name and not any(p == "metadata.name" for p, _ in problems):
                ctx.error(
                    doc,
                    label,
                    "metadata.name",
                    f"'{name}' is not a valid name (letters, digits and [-_.] inside, "
                    "at most 63 characters)",
                )
            return None
        if not valid_namespace(namespace):
            ctx.error(doc, label, "metadata.namespace", f"'{namespace}' is not a valid namespace")
            return None
        kind_l = kind.lower()
        if kind_l == "location":
            return None  # followed while reading
        spec = data.get("spec") or {}
        if not isinstance(spec, dict):
            return None  # the schema said so; other entities may still name this one
        e = Entity(kind_l, namespace, name, slug_for(namespace, name), doc, spec, metadata)
        e.text = text
        return e

    # ---- phase 2: load the database state (a fixed number of queries, whatever the size)
    def load_db(self):
        """Tribes and squads in full (small tables, needed to walk group trees); for the other
        tables the slug ↔ id map of every row, and full rows and relations only for the
        entities this import names."""
        named = list(self.entities["group"])
        self.db_tribes = _group_rows(Tribe, ("slug", "parent"), named)
        self.db_squads = _group_rows(Squad, ("slug", "parent", "tribe"), named)
        self.tribe_by_id = {t.pk: t.slug for t in self.db_tribes.values()}
        self.squad_by_id = {s.pk: s.slug for s in self.db_squads.values()}
        self._load_ids()
        for table in ENTITY_TABLES:
            setattr(self, table.rows, self._named_rows(table))
        self.tag_ids = dict(Tag.objects.values_list("name", "pk"))
        self.db_memberships = defaultdict(dict)  # person slug → squad slug → (id, role)
        self._memberships_loaded = set()
        self._load_memberships(list(self.db_persons))
        self._load_service_relations()

    def _load_ids(self):
        """``ids``: kind → slug → id of every row; ``<kind>_by_id``: the reverse. One query
        for all the tables (11,500 pairs at 10,000 services), read without building models."""
        self.ids = {"group": {}}
        pairs = _slug_id_pairs(ENTITY_TABLES)
        for n, table in enumerate(ENTITY_TABLES):
            self.ids[table.entity_kind] = dict(pairs[n])
            by_id = {pk: slug for slug, pk in pairs[n]}
            setattr(self, f"{'service' if table.kind == 'component' else table.kind}_by_id", by_id)

    def _named_rows(self, table):
        """slug → row of the rows of ``table`` this import names."""
        kind = table.entity_kind
        wanted = [slug for slug in self.entities[kind] if slug in self.ids[kind]]
        if not wanted:
            return {}
        return {o.slug: o for o in table.model.objects.filter(slug__any=many(wanted))}

    def _load_service_relations(self):
        """Tags, provided and consumed APIs and dependencies of the services the import names."""
        self.db_tags = defaultdict(dict)  # service slug → tag name → through id
        self.db_provides = defaultdict(dict)  # service slug → api slug → through id
        self.db_consumes = defaultdict(dict)
        self.db_deps = defaultdict(dict)  # service slug → (kind, slug) → id
        service_ids = many(o.pk for o in self.db_services.values())
        if not service_ids:
            return
        tag_names = {v: k for k, v in self.tag_ids.items()}
        for tid, sid, tag_id in Service.tags.through.objects.filter(
            service_id__any=service_ids
        ).values_list("pk", "service_id", "tag_id"):
            self.db_tags[self.service_by_id[sid]][tag_names[tag_id]] = tid
        for rel, target in (
            (Service.provides_apis.through, self.db_provides),
            (Service.consumes_apis.through, self.db_consumes),
        ):
            for tid, sid, aid in rel.objects.filter(service_id__any=service_ids).values_list(
                "pk", "service_id", "api_id"
            ):
                target[self.service_by_id[sid]][self.api_by_id[aid]] = tid
        for did, sid, ts, tr in Dependency.objects.filter(source_id__any=service_ids).values_list(
            "pk", "source_id", "target_service_id", "target_resource_id"
        ):
            key = (
                ("component", self.service_by_id[ts])
                if ts
                else ("resource", self.resource_by_id[tr])
            )
            self.db_deps[self.service_by_id[sid]][key] = did

    def _load_memberships(self, slugs):
        ids = {
            self.ids["user"][s]: s
            for s in slugs
            if s in self.ids["user"] and s not in self._memberships_loaded
        }
        self._memberships_loaded.update(slugs)
        if not ids:
            return
        for mid, pid, sid, role in Membership.objects.filter(person_id__any=many(ids)).values_list(
            "pk", "person_id", "squad_id", "role"
        ):
            self.db_memberships[ids[pid]][self.squad_by_id[sid]] = (mid, role)

    def memberships_of(self, slug):
        """{squad slug: (membership id, role)} of a person in the database."""
        if slug not in self._memberships_loaded:
            self._load_memberships([slug])
        return self.db_memberships.get(slug, {})

    def db_person(self, slug):
        """A person row not named by the import (loaded on demand, kept for the diff)."""
        if slug not in self.db_persons:
            self.db_persons[slug] = Person.objects.get(slug=slug)
        return self.db_persons[slug]

    def diff(self):
        self.plan = {}  # kind → {"create": {slug: desired}, "update": {slug: (desired, current)}}
        for kind, desired, db in (
            ("tribe", self.tribe_desired, self.db_tribes),
            ("squad", self.squad_desired, self.db_squads),
            ("person", self.person_desired, self.db_persons),
            ("domain", self.domain_desired, self.db_domains),
            ("system", self.system_desired, self.db_systems),
            ("api", self.api_desired, self.db_apis),
            ("resource", self.resource_desired, self.db_resources),
            ("component", self.service_desired, self.db_services),
        ):
            create, update = {}, {}
            counts = self.report.counts[kind]
            for slug, want in desired.items():
                obj = db.get(slug)
                if obj is None:
                    create[slug] = want
                    counts["created"] += 1
                    continue
                have = row_shape(kind, obj, self)
                if same(want, have):
                    counts["unchanged"] += 1
                else:
                    update[slug] = (want, have)
                    counts["updated"] += 1
            self.plan[kind] = {"create": create, "update": update}
        self.plan["foreign"] = foreign.diff(self)

    # ---- phase 5: permissions
    def _entity_for(self, kind, slug):
        if kind == "foreign":
            return self.foreign.get(slug)
        table = {"tribe": "group", "squad": "group", "person": "user"}.get(kind, kind)
        return self.entities[table].get(slug)

    def check_permissions(self):
        actor = self.actor
        if actor is None or actor.is_admin:
            return
        denied = []
        squad_ids = {slug: s.pk for slug, s in self.db_squads.items()}

        def deny(kind, slug, why):
            e = self._entity_for(kind, slug)
            where = f"{e.doc.file}: document {e.doc.index} ({e.ref})" if e else _label(kind, slug)
            denied.append(f"{where}: {why}")

        def need(kind, slug, action, owners):
            owners = [o for o in owners if o]
            if not owners:
                deny(kind, slug, f"only an org admin may {action} an entity owned by no team")
                return
            for o in owners:
                if o not in squad_ids or not actor.can("catalog:write", squad_ids[o]):
                    deny(
                        kind,
                        slug,
                        f"you may not {action} it: it is owned by squad '{o}' and you lack catalog:write for that squad",
                    )
                    return

        for kind in ("tribe", "squad"):
            for slug in self.plan[kind]["create"]:
                deny(
                    kind,
                    slug,
                    f"only an org admin may create a new {'team' if kind == 'squad' else 'tribe'}",
                )
        for slug in self.plan["tribe"]["update"]:
            deny("tribe", slug, "only an org admin may change a tribe")
        for slug in self.plan["squad"]["update"]:
            need("squad", slug, "change", [slug])
        for slug, moved in ownership.structure_changes(self.plan).items():
            deny("squad", slug, f"only an org admin may move a team: the import changes {moved}")
        for slug, want in self.plan["person"]["create"].items():
            need("person", slug, "create", sorted({s for s, _ in want["memberships"]}))
        for slug, (want, have) in self.plan["person"]["update"].items():
            need(
                "person",
                slug,
                "change",
                sorted({s for s, _ in want["memberships"] | have["memberships"]}),
            )
        for kind in ("domain", "system", "api", "resource", "component", "foreign"):
            for slug, want in self.plan[kind]["create"].items():
                need(kind, slug, "create", [want["owner"]])
            for slug, (want, have) in self.plan[kind]["update"].items():
                need(kind, slug, "change", sorted({want["owner"], have["owner"]} - {None}))
        if denied:
            more = f" (and {len(denied) - 5} more)" if len(denied) > 5 else ""
            raise PermissionDenied("; ".join(denied[:5]) + more)

    # ---- phase 6: write
    def write(self):
        with stitch.batch():  # the read form of every service affected, stitched once
            writer.write(self)
            stitch.restitch(writer.affected_services(self.plan))  # COPY sends no signals
        CATALOG.bump()  # COPY and through-table writes send no model signals


def _slug_id_pairs(tables):
    """[(slug, id), ...] of every row of each table, in one query."""
    out = [[] for _ in tables]
    qn = connection.ops.quote_name
    sql = " UNION ALL ".join(
        f"SELECT {n}, {qn('slug')}, {qn(t.model._meta.pk.column)} FROM {qn(t.model._meta.db_table)}"
        for n, t in enumerate(tables)
    )
    with connection.cursor() as cur:
        cur.execute(sql)
        for n, slug, pk in cur.fetchall():
            out[n].append((slug, pk))
    return out


def _group_rows(model, tree_fields, named):
    """slug → row of every tribe or squad: the fields that place it in the group tree for all,
    every field for those the import names (the diff compares them)."""
    rows = {o.slug: o for o in model.objects.only(*tree_fields)}
    rows.update((o.slug, o) for o in model.objects.filter(slug__any=many(named)))
    return rows


def _label(kind, slug):
    table = {"tribe": "group", "squad": "group", "person": "user"}.get(kind, kind)
    return ref_of_slug(table, slug)


def import_catalog(sources, actor, *, dry_run=False) -> ImportReport:
    """Import Backstage descriptors. ``sources``: ``[(name, text), ...]`` (multi-document YAML;
    use ``load_sources`` to read paths/URLs so Location targets can be followed).

    All-or-nothing: raises ``ImportFailed`` (``.errors``: every problem with file, document,
    entity and field) or ``PermissionDenied``, and then nothing is written. Returns an
    ``ImportReport`` with created/updated/unchanged counts per kind. ``actor=None`` means a
    trusted system caller.
    """
    ownership.may_import(actor)  # before any parsing work
    with gcpause.paused():
        return _run(_Importer(sources, actor, dry_run), actor, dry_run)


def _run(imp, actor, dry_run):
    imp.parse()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cur:  # one import at a time: the diff stays true
                cur.execute("SELECT pg_advisory_xact_lock(%s)", [0x0BAC_C1])
        imp.load_db()
        imp.build()
        if imp.report.errors:
            raise ImportFailed(imp.report.errors, imp.report)
        imp.diff()
        imp.check_permissions()
        if not dry_run and imp.report.changed:
            imp.write()
        if not dry_run and imp.report.changed:
            _emit_imported(imp)
        if not dry_run and actor is not None:
            audit.record(
                actor,
                "catalog.import",
                "catalog",
                target_type="catalog",
                data={
                    "sources": imp.report.sources[:50],
                    "counts": imp.report.counts,
                    "created": imp.report.created,
                    "updated": imp.report.updated,
                    "unchanged": imp.report.unchanged,
                    "skipped": imp.report.skipped,
                },
            )
    return imp.report


def _emit_imported(imp):
    """One ``catalog.imported`` event to each squad whose services the import created or
    changed. The owners come from the plan (the rows just written), the squads and their
    subscriptions from two queries, whatever the number of squads."""
    by_owner = defaultdict(list)  # squad slug → slugs of its created or changed services
    for slug, want in writer.touched(imp.plan, "component").items():
        if want.get("owner"):
            by_owner[want["owner"]].append(slug)
    if not by_owner:
        return
    squads = Squad.objects.filter(slug__any=list(by_owner)).only("pk", "slug")
    events.emit_many(
        "catalog.imported",
        [(sq, {"services": sorted(by_owner[sq.slug])[:200]}) for sq in squads],
    )
