"""Import Backstage descriptor files into the catalog: all-or-nothing, idempotent, bulk.

Phases: read every document (following Location targets) → build one desired row per entity,
collecting every error with its file, document, entity and field → compare with what the
database holds (a handful of queries, whatever the size) → check permissions → write with bulk
operations inside one transaction.
"""

import re
from collections import defaultdict
from dataclasses import dataclass, field

import yaml
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import validate_email
from django.db import DEFAULT_DB_ALIAS, connection, connections, models, transaction
from django.utils import timezone

from squads.models import (
    Api,
    Dependency,
    Domain,
    Lifecycle,
    Membership,
    Person,
    Resource,
    Service,
    Squad,
    System,
    Tag,
    Tribe,
)

from . import sources as src
from .refs import (
    DEFAULT_NAMESPACE,
    KIND_NAMES,
    NAME_RE,
    NAMESPACE_RE,
    RefError,
    parse_ref,
    ref_string,
    slug_for,
)

ENTITY_KINDS = ("group", "user", "domain", "system", "api", "resource", "component")
REPORT_KINDS = ("tribe", "squad", "person", "domain", "system", "api", "resource", "component")
LIFECYCLES = [c.value for c in Lifecycle]
TAG_RE = re.compile(r"^[a-z0-9:+#]+(-[a-z0-9:+#]+)*$")
TEAM_TYPES = {"team"}
# Annotations that map onto Service fields (kept out of Service.annotations, written back on export).
ANN_TIER = "backline.io/tier"
ANN_RUNBOOK = "backline.io/runbook"
ANN_ONCALL = "backline.io/oncall"
ANN_REPO = "backline.io/repository"
ANN_BRANCH = "backline.io/default-branch"
ANN_GITHUB = "github.com/project-slug"
ANN_CHAT = "backline.io/chat-channel"
ANN_LEAD_OF = "backline.io/lead-of"
ANN_PO_OF = "backline.io/product-owner-of"
SERVICE_MAPPED_ANNOTATIONS = (ANN_TIER, ANN_RUNBOOK, ANN_ONCALL, ANN_REPO, ANN_BRANCH, ANN_GITHUB)
BATCH = 1000
YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available


# --- results ------------------------------------------------------------------------------------
@dataclass
class ImportIssue:
    file: str
    document: int | None = None
    entity: str = ""
    field: str = ""
    message: str = ""

    def __str__(self):
        head = self.file or "<input>"
        if self.document is not None:
            head += f": document {self.document}"
        if self.entity:
            head += f" ({self.entity})"
        return f"{head}: {self.field + ': ' if self.field else ''}{self.message}"

    def as_dict(self):
        return {
            "file": self.file,
            "document": self.document,
            "entity": self.entity,
            "field": self.field,
            "message": self.message,
        }


class ImportFailed(Exception):
    """The import found invalid entities; nothing was written. ``errors``: [ImportIssue]."""

    def __init__(self, errors, report=None):
        self.errors = list(errors)
        self.report = report
        n = len(self.errors)
        super().__init__(
            f"{n} error{'s' if n != 1 else ''}; nothing was imported:\n"
            + "\n".join(f"  {e}" for e in self.errors)
        )


@dataclass
class ImportReport:
    dry_run: bool = False
    sources: list = field(default_factory=list)
    files_read: int = 0
    documents: int = 0
    counts: dict = field(
        default_factory=lambda: {
            k: {"created": 0, "updated": 0, "unchanged": 0} for k in REPORT_KINDS
        }
    )
    skipped: dict = field(default_factory=dict)  # unsupported kind → count
    locations_followed: int = 0
    warnings: list = field(default_factory=list)
    errors: list = field(default_factory=list)

    def _total(self, what):
        return sum(c[what] for c in self.counts.values())

    @property
    def created(self):
        return self._total("created")

    @property
    def updated(self):
        return self._total("updated")

    @property
    def unchanged(self):
        return self._total("unchanged")

    @property
    def changed(self):
        return self.created + self.updated

    @property
    def ok(self):
        return not self.errors

    @property
    def summary(self) -> str:
        lines = [
            f"{'Dry run: ' if self.dry_run else ''}{self.files_read} file(s), "
            f"{self.documents} document(s), {self.locations_followed} location target(s) followed",
            f"{'would create' if self.dry_run else 'created'} {self.created}, "
            f"{'would update' if self.dry_run else 'updated'} {self.updated}, "
            f"unchanged {self.unchanged}",
        ]
        for kind in REPORT_KINDS:
            c = self.counts[kind]
            if any(c.values()):
                lines.append(
                    f"  {kind:<10} created {c['created']:>5}  updated {c['updated']:>5}  "
                    f"unchanged {c['unchanged']:>5}"
                )
        for kind, n in sorted(self.skipped.items()):
            lines.append(
                f"  skipped {n} {kind} entit{'y' if n == 1 else 'ies'} (kind not supported)"
            )
        for w in self.warnings:
            lines.append(f"warning: {w}")
        return "\n".join(lines)

    def as_dict(self):
        return {
            "dry_run": self.dry_run,
            "sources": self.sources,
            "files_read": self.files_read,
            "documents": self.documents,
            "locations_followed": self.locations_followed,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "counts": self.counts,
            "skipped": self.skipped,
            "warnings": self.warnings,
        }


# --- reading ------------------------------------------------------------------------------------
@dataclass
class Doc:
    file: str
    index: int
    data: dict
    origin: str | None  # absolute path or URL of the file, None for uploads


@dataclass
class Entity:
    kind: str  # lower-case Backstage kind
    namespace: str
    name: str
    slug: str
    doc: Doc
    spec: dict
    metadata: dict

    @property
    def ref(self):
        return ref_string(self.kind, self.namespace, self.name)


class _Ctx:
    """Collects errors and warnings while reading and validating."""

    def __init__(self, report):
        self.report = report
        self.errors = report.errors
        self.warnings = report.warnings

    def error(self, doc, entity, field_, message):
        self.errors.append(
            ImportIssue(
                file=doc.file if doc else "",
                document=doc.index if doc else None,
                entity=entity.ref if isinstance(entity, Entity) else (entity or ""),
                field=field_,
                message=message,
            )
        )

    def warn(self, doc, entity, message):
        where = f"{doc.file}: document {doc.index}" if doc else ""
        ref = entity.ref if isinstance(entity, Entity) else (entity or "")
        self.warnings.append(f"{where}{f' ({ref})' if ref else ''}: {message}")


def _read_documents(sources, ctx: _Ctx) -> list[Doc]:
    docs: list[Doc] = []
    visited = set()
    queue = []
    for item in sources:
        name, text = item[0], item[1]
        origin = getattr(item, "origin", None)
        if origin:
            visited.add(origin)
        queue.append((name, text, origin))
        ctx.report.sources.append(name)
    while queue:
        name, text, origin = queue.pop(0)
        ctx.report.files_read += 1
        index = 0
        try:
            for index, data in enumerate(yaml.load_all(text, Loader=YamlLoader), start=1):  # noqa: B007
                if data is None:
                    continue
                doc = Doc(name, index, data, origin)
                docs.append(doc)
                if isinstance(data, dict) and str(data.get("kind", "")).lower() == "location":
                    queue.extend(_follow_location(doc, ctx, visited))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            ctx.error(Doc(name, index + 1, {}, origin), "", "", f"invalid YAML{where}: {problem}")
    ctx.report.documents = len(docs)
    return docs


def _location_entity_label(doc):
    meta = doc.data.get("metadata") or {}
    name = meta.get("name") if isinstance(meta, dict) else None
    ns = (meta.get("namespace") if isinstance(meta, dict) else None) or DEFAULT_NAMESPACE
    return ref_string("location", ns, name) if name else "location"


def _follow_location(doc, ctx, visited):
    spec = doc.data.get("spec") or {}
    label = _location_entity_label(doc)
    if not isinstance(spec, dict):
        ctx.error(doc, label, "spec", "must be a mapping")
        return []
    targets = []
    if spec.get("target") is not None:
        targets.append(("spec.target", spec.get("target")))
    raw_targets = spec.get("targets") or []
    if not isinstance(raw_targets, list):
        ctx.error(doc, label, "spec.targets", "must be a list of paths or URLs")
        raw_targets = []
    targets += [(f"spec.targets[{i}]", t) for i, t in enumerate(raw_targets)]
    out = []
    for path, target in targets:
        if not isinstance(target, str) or not target.strip():
            ctx.error(doc, label, path, "must be a path or URL")
            continue
        if doc.origin is None:
            ctx.warn(
                doc,
                label,
                f"{path}: target '{target}' not followed: uploaded text has no base path or "
                "URL (use `import_backstage` or register the location instead)",
            )
            continue
        resolved = src.resolve(doc.origin, target)
        if resolved in visited:
            ctx.warn(doc, label, f"{path}: target '{target}' was already read; skipped")
            continue
        visited.add(resolved)
        try:
            text = src.read(resolved)
        except src.SourceError as exc:
            ctx.error(doc, label, path, f"location target '{target}' {exc}")
            continue
        ctx.report.locations_followed += 1
        out.append((src.display_name(doc.file, doc.origin, target, resolved), text, resolved))
    return out


# --- validation helpers -------------------------------------------------------------------------
def _text(ctx, e, obj, key, path, *, max_len=None, default=""):
    value = obj.get(key) if isinstance(obj, dict) else None
    if value is None:
        return default
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        ctx.error(e.doc, e, path, "must be a string")
        return default
    value = value.strip()
    if max_len and len(value) > max_len:
        ctx.error(e.doc, e, path, f"is {len(value)} characters long; at most {max_len} allowed")
        return value[:max_len]
    return value


def _links(ctx, e):
    links = e.metadata.get("links")
    if links is None:
        return []
    if not isinstance(links, list):
        ctx.error(e.doc, e, "metadata.links", "must be a list")
        return []
    out = []
    for i, link in enumerate(links):
        if not isinstance(link, dict) or not isinstance(link.get("url"), str) or not link["url"]:
            ctx.error(e.doc, e, f"metadata.links[{i}]", "must be a mapping with a 'url'")
            continue
        out.append(
            {
                k: str(v)
                for k, v in link.items()
                if k in ("url", "title", "icon", "type") and v is not None
            }
        )
    return out


def _tags(ctx, e):
    tags = e.metadata.get("tags")
    if tags is None:
        return []
    if not isinstance(tags, list):
        ctx.error(e.doc, e, "metadata.tags", "must be a list")
        return []
    out = []
    for i, tag in enumerate(tags):
        if not isinstance(tag, str) or not TAG_RE.match(tag) or len(tag) > 63:
            ctx.error(
                e.doc,
                e,
                f"metadata.tags[{i}]",
                f"'{tag}' is not a valid tag (lower-case letters, digits, ':+#', single dashes; at most 63)",
            )
            continue
        if tag not in out:
            out.append(tag)
    return out


def _annotations(ctx, e):
    ann = e.metadata.get("annotations")
    if ann is None:
        return {}
    if not isinstance(ann, dict):
        ctx.error(e.doc, e, "metadata.annotations", "must be a mapping")
        return {}
    return {str(k): "" if v is None else str(v) for k, v in ann.items()}


def _ref_list(ctx, e, path):
    value = e.spec.get(path.split(".")[-1])
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        ctx.error(e.doc, e, path, "must be a list of entity references")
        return []
    return value


def _email(ctx, e, value, path):
    if not value:
        return ""
    try:
        validate_email(value)
    except ValidationError:
        ctx.error(e.doc, e, path, f"'{value}' is not a valid email address")
        return ""
    if len(value) > 254:
        ctx.error(e.doc, e, path, "is longer than 254 characters")
    return value


def _url(ctx, e, value, path, max_len=500):
    if value and len(value) > max_len:
        ctx.error(e.doc, e, path, f"is {len(value)} characters long; at most {max_len} allowed")
    return value


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


# --- the importer -------------------------------------------------------------------------------
class _Importer:
    def __init__(self, sources, actor, dry_run):
        self.actor = actor
        self.report = ImportReport(dry_run=dry_run)
        self.ctx = _Ctx(self.report)
        self.sources = sources

    # ---- phase 1: documents → entities
    def parse(self):
        ctx = self.ctx
        self.entities = {k: {} for k in ENTITY_KINDS}  # kind → slug → Entity
        for doc in _read_documents(self.sources, ctx):
            data = doc.data
            if not isinstance(data, dict):
                ctx.error(doc, "", "", "a document must be a mapping (an entity)")
                continue
            if "apiVersion" not in data and "kind" not in data:
                ctx.warn(doc, "", "not a Backstage entity (no apiVersion or kind); skipped")
                continue
            kind = data.get("kind")
            if not isinstance(kind, str) or not kind:
                ctx.error(doc, "", "kind", "is required")
                continue
            api_version = data.get("apiVersion")
            if not isinstance(api_version, str) or "/" not in api_version:
                ctx.error(doc, "", "apiVersion", "is required (e.g. backstage.io/v1alpha1)")
            metadata = data.get("metadata")
            if not isinstance(metadata, dict):
                ctx.error(doc, kind.lower(), "metadata", "is required and must be a mapping")
                continue
            name = metadata.get("name")
            namespace = metadata.get("namespace") or DEFAULT_NAMESPACE
            label = ref_string(kind.lower(), namespace, name) if name else kind.lower()
            if not isinstance(name, str) or not NAME_RE.match(name) or len(name) > 63:
                ctx.error(
                    doc,
                    label,
                    "metadata.name",
                    f"'{name}' is not a valid name (letters, digits and single [-_.] "
                    "separators, at most 63 characters)"
                    if name
                    else "is required",
                )
                continue
            if not isinstance(namespace, str) or not NAMESPACE_RE.match(namespace):
                ctx.error(
                    doc, label, "metadata.namespace", f"'{namespace}' is not a valid namespace"
                )
                continue
            kind_l = kind.lower()
            if kind_l == "location":
                continue  # followed while reading
            if kind_l not in ENTITY_KINDS:
                self.report.skipped[kind] = self.report.skipped.get(kind, 0) + 1
                ctx.warn(doc, label, f"kind '{kind}' is not supported by Backline; skipped")
                continue
            spec = data.get("spec") or {}
            if not isinstance(spec, dict):
                ctx.error(doc, label, "spec", "must be a mapping")
                continue
            slug = slug_for(namespace, name)
            if len(slug) > 100:
                ctx.error(doc, label, "metadata.name", "namespace and name are too long together")
                continue
            e = Entity(kind_l, namespace, name, slug, doc, spec, metadata)
            first = self.entities[kind_l].get(slug)
            if first is not None:
                ctx.error(
                    doc,
                    e,
                    "metadata.name",
                    f"{e.ref} is defined twice (also in {first.doc.file}, document {first.doc.index})",
                )
                continue
            self.entities[kind_l][slug] = e

    # ---- phase 2: load the database state (one query per table)
    def load_db(self):
        self.db_tribes = {t.slug: t for t in Tribe.objects.all()}
        self.db_squads = {s.slug: s for s in Squad.objects.all()}
        self.db_persons = {p.slug: p for p in Person.objects.all()}
        self.db_domains = {d.slug: d for d in Domain.objects.all()}
        self.db_systems = {s.slug: s for s in System.objects.all()}
        self.db_apis = {a.slug: a for a in Api.objects.all()}
        self.db_resources = {r.slug: r for r in Resource.objects.all()}
        self.db_services = {s.slug: s for s in Service.objects.all()}
        self.tribe_by_id = {t.pk: t.slug for t in self.db_tribes.values()}
        self.squad_by_id = {s.pk: s.slug for s in self.db_squads.values()}
        self.person_by_id = {p.pk: p.slug for p in self.db_persons.values()}
        self.domain_by_id = {d.pk: d.slug for d in self.db_domains.values()}
        self.system_by_id = {s.pk: s.slug for s in self.db_systems.values()}
        self.api_by_id = {a.pk: a.slug for a in self.db_apis.values()}
        self.resource_by_id = {r.pk: r.slug for r in self.db_resources.values()}
        self.service_by_id = {s.pk: s.slug for s in self.db_services.values()}
        self.tag_ids = dict(Tag.objects.values_list("name", "pk"))
        tag_names = {v: k for k, v in self.tag_ids.items()}
        self.db_memberships = defaultdict(dict)  # person slug → squad slug → (id, role)
        for mid, pid, sid, role in Membership.objects.values_list(
            "pk", "person_id", "squad_id", "role"
        ):
            self.db_memberships[self.person_by_id[pid]][self.squad_by_id[sid]] = (mid, role)
        self.db_tags = defaultdict(dict)  # service slug → tag name → through id
        for tid, sid, tag_id in Service.tags.through.objects.values_list(
            "pk", "service_id", "tag_id"
        ):
            self.db_tags[self.service_by_id[sid]][tag_names[tag_id]] = tid
        self.db_provides = defaultdict(dict)
        for tid, sid, aid in Service.provides_apis.through.objects.values_list(
            "pk", "service_id", "api_id"
        ):
            self.db_provides[self.service_by_id[sid]][self.api_by_id[aid]] = tid
        self.db_consumes = defaultdict(dict)
        for tid, sid, aid in Service.consumes_apis.through.objects.values_list(
            "pk", "service_id", "api_id"
        ):
            self.db_consumes[self.service_by_id[sid]][self.api_by_id[aid]] = tid
        self.db_deps = defaultdict(dict)  # service slug → (kind, slug) → id
        for did, sid, ts, tr in Dependency.objects.values_list(
            "pk", "source_id", "target_service_id", "target_resource_id"
        ):
            key = (
                ("component", self.service_by_id[ts])
                if ts
                else ("resource", self.resource_by_id[tr])
            )
            self.db_deps[self.service_by_id[sid]][key] = did

    # ---- reference resolution
    def _ref(self, e, path, value, default_kind, allowed):
        try:
            kind, ns, name = parse_ref(value, default_kind, e.namespace)
        except RefError as exc:
            self.ctx.error(e.doc, e, path, str(exc))
            return None, None
        if kind not in allowed:
            names = " or ".join(KIND_NAMES.get(k, k) for k in allowed)
            self.ctx.error(e.doc, e, path, f"'{value}' must refer to a {names}, not a {kind}")
            return None, None
        return kind, slug_for(ns, name)

    def group_type(self, slug):
        """'tribe' | 'squad' | None, the import's word first, then the database's."""
        e = self.entities["group"].get(slug)
        if e is not None:
            return self.group_kind[slug]
        if slug in self.db_squads:
            return "squad"
        if slug in self.db_tribes:
            return "tribe"
        return None

    def _exists(self, kind, slug):
        if kind == "group":
            return self.group_type(slug) is not None
        db = {
            "user": self.db_persons,
            "component": self.db_services,
            "system": self.db_systems,
            "domain": self.db_domains,
            "api": self.db_apis,
            "resource": self.db_resources,
        }[kind]
        return slug in self.entities[kind] or slug in db

    def _missing(self, e, path, kind, slug):
        self.ctx.error(e.doc, e, path, f"{KIND_NAMES[kind]} '{slug}' does not exist")

    def _resolve(self, e, path, value, default_kind, allowed=None):
        """Resolve a reference that must exist; returns (kind, slug) or (None, None)."""
        kind, slug = self._ref(e, path, value, default_kind, allowed or (default_kind,))
        if kind is None:
            return None, None
        if not self._exists(kind, slug):
            self._missing(e, path, kind, slug)
            return None, None
        return kind, slug

    def _owner(self, e, allow_tribe):
        """spec.owner → (squad slug, tribe slug)."""
        value = e.spec.get("owner")
        if value is None:
            return None, None
        kind, slug = self._ref(e, "spec.owner", value, "group", ("group", "user"))
        if kind is None:
            return None, None
        if not self._exists(kind, slug):
            explicit_kind = isinstance(value, str) and ":" in value
            if kind == "group" and not explicit_kind and self._exists("user", slug):
                self.ctx.warn(e.doc, e, f"spec.owner: no Group '{slug}'; using User '{slug}'")
                kind = "user"
            else:
                self._missing(e, "spec.owner", kind, slug)
                return None, None
        if kind == "user":
            squads = self.person_squads(slug)
            if not squads:
                self.ctx.error(
                    e.doc,
                    e,
                    "spec.owner",
                    f"owner User '{slug}' is a member of no team; Backline needs an owning team",
                )
                return None, None
            self.ctx.warn(
                e.doc, e, f"spec.owner: User '{slug}' stands for their team '{squads[0]}'"
            )
            return squads[0], None
        if self.group_type(slug) == "tribe":
            if allow_tribe:
                return None, slug
            self.ctx.warn(
                e.doc,
                e,
                f"spec.owner: Group '{slug}' is not a team; Backline records no owner for this {KIND_NAMES[e.kind]}",
            )
            return None, None
        return slug, None

    def person_squads(self, slug):
        """The person's teams, in the order their descriptor lists them."""
        if slug in self.person_desired:
            return list(self.person_order[slug])
        return sorted(self.db_memberships.get(slug, {}))

    # ---- phase 3: desired state
    def build(self):
        ctx = self.ctx
        groups = self.entities["group"]
        # group kind: team → squad, anything else → tribe
        self.group_kind = {}
        for slug, e in groups.items():
            gtype = _text(ctx, e, e.spec, "type", "spec.type", max_len=50)
            if not gtype:
                ctx.error(e.doc, e, "spec.type", "is required (team, tribe, business-unit, ...)")
                gtype = "team"
            e.gtype = gtype
            self.group_kind[slug] = "squad" if gtype in TEAM_TYPES else "tribe"
            if (
                self.group_kind[slug] == "squad"
                and slug in self.db_tribes
                and slug not in self.db_squads
            ):
                ctx.error(
                    e.doc, e, "spec.type", f"'{slug}' exists as a tribe; it cannot become a team"
                )
            if (
                self.group_kind[slug] == "tribe"
                and slug in self.db_squads
                and slug not in self.db_tribes
            ):
                ctx.error(
                    e.doc, e, "spec.type", f"'{slug}' exists as a team; it cannot become a {gtype}"
                )
        # parents and children
        parent = {}
        claimed_by = {}
        for slug, e in groups.items():
            if e.spec.get("parent") is not None:
                _, p = self._resolve(e, "spec.parent", e.spec["parent"], "group")
                if p == slug:
                    ctx.error(e.doc, e, "spec.parent", "a group cannot be its own parent")
                elif p:
                    parent[slug] = p
        for slug, e in groups.items():
            children = e.spec.get("children") or []
            if not isinstance(children, list):
                ctx.error(e.doc, e, "spec.children", "must be a list of group references")
                continue
            for i, value in enumerate(children):
                path = f"spec.children[{i}]"
                _, child = self._resolve(e, path, value, "group")
                if not child:
                    continue
                if child in groups:
                    if parent.get(child, slug) != slug:
                        ctx.error(
                            e.doc,
                            e,
                            path,
                            f"Group '{child}' names '{parent[child]}' as its parent, not '{slug}'",
                        )
                    elif claimed_by.get(child, slug) != slug:
                        ctx.error(
                            e.doc,
                            e,
                            path,
                            f"Group '{child}' is also a child of '{claimed_by[child]}'",
                        )
                    else:
                        claimed_by[child] = slug
                        parent.setdefault(child, slug)
                elif self._db_group_parent(child) != slug:
                    ctx.warn(
                        e.doc,
                        e,
                        f"{path}: Group '{child}' is not in this import; its parent is left as it is",
                    )
        self.group_parent = parent

        # users first: owners of kind user map to their team
        self.person_desired = {}
        self.person_order = {}
        members_of = defaultdict(list)  # person slug → [squad slug] from Group spec.members
        for slug, e in groups.items():
            for i, value in enumerate(_ref_list(ctx, e, "spec.members")):
                _, p = self._resolve(e, f"spec.members[{i}]", value, "user")
                if p and self.group_kind[slug] == "squad":
                    members_of[p].append(slug)
        for slug, e in self.entities["user"].items():
            self._build_user(e, members_of.get(slug, []))
        for p_slug, squads in members_of.items():
            if p_slug not in self.entities["user"]:  # a person already in the database
                current = self.db_memberships.get(p_slug, {})
                missing = [s for s in squads if s not in current]
                if missing:
                    p = self.db_persons[p_slug]
                    self.person_desired[p_slug] = {
                        "name": p.name,
                        "email": p.email,
                        "picture": p.picture,
                        "memberships": frozenset(
                            {(s, r) for s, (_, r) in current.items()}
                            | {(s, "member") for s in missing}
                        ),
                    }
                    self.person_order[p_slug] = sorted(current) + missing

        self.tribe_desired, self.squad_desired = {}, {}
        for e in groups.values():
            self._build_group(e)
        self.domain_desired = {s: self._build_domain(e) for s, e in self.entities["domain"].items()}
        self.system_desired = {s: self._build_system(e) for s, e in self.entities["system"].items()}
        self.api_desired = {s: self._build_api(e) for s, e in self.entities["api"].items()}
        self.resource_desired = {
            s: self._build_resource(e) for s, e in self.entities["resource"].items()
        }
        self.service_desired = {
            s: self._build_component(e) for s, e in self.entities["component"].items()
        }

    def _db_group_parent(self, slug):
        if slug in self.db_squads:
            s = self.db_squads[slug]
            if s.parent_id:
                return self.squad_by_id[s.parent_id]
            return self.tribe_by_id.get(s.tribe_id)
        if slug in self.db_tribes:
            return self.tribe_by_id.get(self.db_tribes[slug].parent_id)
        return None

    def _parent_of(self, slug):
        if slug in self.entities["group"]:
            return self.group_parent.get(slug)
        return self._db_group_parent(slug)

    def _ancestors(self, e):
        """Walk up from a group; returns the chain of ancestor slugs, or None on a cycle."""
        chain, seen = [], {e.slug}
        p = self._parent_of(e.slug)
        while p:
            if p in seen:
                self.ctx.error(
                    e.doc, e, "spec.parent", f"the parent chain loops back through '{p}'"
                )
                return None
            seen.add(p)
            chain.append(p)
            p = self._parent_of(p)
        return chain

    def _build_group(self, e):
        ctx = self.ctx
        profile = e.spec.get("profile") or {}
        if not isinstance(profile, dict):
            ctx.error(e.doc, e, "spec.profile", "must be a mapping")
            profile = {}
        name = (
            _text(ctx, e, profile, "displayName", "spec.profile.displayName", max_len=200)
            or _text(ctx, e, e.metadata, "title", "metadata.title", max_len=200)
            or e.slug[:200]
        )
        description = _text(ctx, e, e.metadata, "description", "metadata.description")
        email = _email(
            ctx, e, _text(ctx, e, profile, "email", "spec.profile.email"), "spec.profile.email"
        )
        picture = _url(
            ctx,
            e,
            _text(ctx, e, profile, "picture", "spec.profile.picture"),
            "spec.profile.picture",
        )
        links = _links(ctx, e)
        ann = _annotations(ctx, e)
        chain = self._ancestors(e) or []
        nearest_tribe = next((a for a in chain if self.group_type(a) == "tribe"), None)
        if self.group_kind[e.slug] == "tribe":
            direct = chain[0] if chain else None
            if direct and self.group_type(direct) == "squad":
                ctx.warn(
                    e.doc,
                    e,
                    f"spec.parent: '{direct}' is a team; the tribe is placed under the nearest "
                    f"tribe above it ({nearest_tribe or 'none'})",
                )
            self.tribe_desired[e.slug] = {
                "name": name,
                "description": description,
                "kind": e.gtype,
                "parent": nearest_tribe,
                "email": email,
                "picture": picture,
                "links": links,
            }
        else:
            direct = chain[0] if chain else None
            self.squad_desired[e.slug] = {
                "name": name,
                "mission": description,
                "tribe": nearest_tribe,
                "parent": direct if direct and self.group_type(direct) == "squad" else None,
                "chat_channel": ann.get(ANN_CHAT, "")[:200],
                "oncall_contact": ann.get(ANN_ONCALL, "")[:200],
                "email": email,
                "picture": picture,
                "links": links,
            }

    def _build_user(self, e, extra_squads):
        ctx = self.ctx
        profile = e.spec.get("profile") or {}
        if not isinstance(profile, dict):
            ctx.error(e.doc, e, "spec.profile", "must be a mapping")
            profile = {}
        name = (
            _text(ctx, e, profile, "displayName", "spec.profile.displayName", max_len=200)
            or _text(ctx, e, e.metadata, "title", "metadata.title", max_len=200)
            or e.name[:200]
        )
        email = _email(
            ctx, e, _text(ctx, e, profile, "email", "spec.profile.email"), "spec.profile.email"
        )
        picture = _url(
            ctx,
            e,
            _text(ctx, e, profile, "picture", "spec.profile.picture"),
            "spec.profile.picture",
        )
        squads = []
        for i, value in enumerate(_ref_list(ctx, e, "spec.memberOf")):
            _, g = self._resolve(e, f"spec.memberOf[{i}]", value, "group")
            if not g:
                continue
            gk = self.group_kind.get(g) if g in self.entities["group"] else self.group_type(g)
            if gk == "tribe":
                ctx.warn(
                    e.doc, e, f"spec.memberOf[{i}]: '{g}' is not a team; membership not recorded"
                )
                continue
            if g not in squads:
                squads.append(g)
        for g in extra_squads:
            if g not in squads:
                squads.append(g)
        ann = _annotations(ctx, e)
        explicit = ANN_LEAD_OF in ann or ANN_PO_OF in ann
        roles = {}
        for key, role in (
            (ANN_PO_OF, Membership.Role.PRODUCT_OWNER),
            (ANN_LEAD_OF, Membership.Role.LEAD),
        ):
            for s in [x.strip() for x in ann.get(key, "").split(",") if x.strip()]:
                if s not in squads:
                    ctx.error(
                        e.doc, e, f"metadata.annotations[{key}]", f"'{s}' is not in spec.memberOf"
                    )
                roles[s] = role.value
        current = self.db_memberships.get(e.slug, {})
        memberships = frozenset(
            (
                s,
                roles.get(s, "member")
                if explicit
                else (current[s][1] if s in current else "member"),
            )
            for s in squads
        )
        self.person_order[e.slug] = squads
        self.person_desired[e.slug] = {
            "name": name,
            "email": email,
            "picture": picture,
            "memberships": memberships,
        }

    def _common(self, e):
        ctx = self.ctx
        return {
            "name": _text(ctx, e, e.metadata, "title", "metadata.title", max_len=200)
            or e.slug[:200],
            "description": _text(ctx, e, e.metadata, "description", "metadata.description"),
        }

    def _system_ref(self, e):
        if e.spec.get("system") is None:
            return None
        return self._resolve(e, "spec.system", e.spec["system"], "system")[1]

    def _lifecycle(self, e, required=True):
        value = _text(self.ctx, e, e.spec, "lifecycle", "spec.lifecycle")
        if not value:
            if required:
                self.ctx.error(
                    e.doc, e, "spec.lifecycle", f"is required (one of {', '.join(LIFECYCLES)})"
                )
            return Lifecycle.EXPERIMENTAL.value
        if value not in LIFECYCLES:
            self.ctx.error(
                e.doc, e, "spec.lifecycle", f"'{value}' is not one of {', '.join(LIFECYCLES)}"
            )
            return Lifecycle.EXPERIMENTAL.value
        return value

    def _build_domain(self, e):
        squad, tribe = self._owner(e, allow_tribe=True)
        if e.spec.get("subdomainOf") is not None:
            # syntax only: Backline does not store sub-domains
            self._ref(e, "spec.subdomainOf", e.spec["subdomainOf"], "domain", ("domain",))
        return {
            **self._common(e),
            "owner": squad,
            "owner_tribe": tribe,
            "tags": _tags(self.ctx, e),
            "links": _links(self.ctx, e),
        }

    def _build_system(self, e):
        squad, tribe = self._owner(e, allow_tribe=True)
        domain = None
        if e.spec.get("domain") is not None:
            domain = self._resolve(e, "spec.domain", e.spec["domain"], "domain")[1]
        return {
            **self._common(e),
            "owner": squad,
            "owner_tribe": tribe,
            "domain": domain,
            "tags": _tags(self.ctx, e),
            "links": _links(self.ctx, e),
        }

    def _build_api(self, e):
        ctx = self.ctx
        squad, _ = self._owner(e, allow_tribe=False)
        definition = self._definition(e)
        return {
            **self._common(e),
            "type": _text(ctx, e, e.spec, "type", "spec.type", max_len=50) or "openapi",
            "lifecycle": self._lifecycle(e),
            "owner": squad,
            "system": self._system_ref(e),
            "definition": definition,
            "tags": _tags(ctx, e),
            "links": _links(ctx, e),
        }

    def _definition(self, e):
        value = e.spec.get("definition")
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        if (
            isinstance(value, dict)
            and len(value) == 1
            and next(iter(value)) in ("$text", "$json", "$yaml")
        ):
            key, target = next(iter(value.items()))
            path = f"spec.definition.{key}"
            if not isinstance(target, str) or not target:
                self.ctx.error(e.doc, e, path, "must be a path or URL")
                return ""
            existing = self.db_apis.get(e.slug)
            keep = existing.definition if existing else ""
            if src.is_url(target):
                self.ctx.warn(
                    e.doc,
                    e,
                    f"{path}: remote definition {target} is not fetched; "
                    f"{'the stored definition is kept' if keep else 'definition left empty'}",
                )
                return keep
            if e.doc.origin is None:
                self.ctx.warn(
                    e.doc, e, f"{path}: '{target}' not read: uploaded text has no base path or URL"
                )
                return keep
            try:
                return src.read(src.resolve(e.doc.origin, target))
            except src.SourceError as exc:
                self.ctx.error(e.doc, e, path, f"definition '{target}' {exc}")
                return ""
        return yaml.safe_dump(value, sort_keys=False, allow_unicode=True)

    def _build_resource(self, e):
        ctx = self.ctx
        squad, _ = self._owner(e, allow_tribe=False)
        if e.spec.get("dependsOn"):
            ctx.warn(e.doc, e, "spec.dependsOn of a Resource is not stored by Backline")
        return {
            **self._common(e),
            "type": _text(ctx, e, e.spec, "type", "spec.type", max_len=50) or "database",
            "owner": squad,
            "system": self._system_ref(e),
            "tags": _tags(ctx, e),
            "links": _links(ctx, e),
        }

    def _build_component(self, e):
        ctx = self.ctx
        squad, _ = self._owner(e, allow_tribe=False)
        ann = _annotations(ctx, e)
        tier = 3
        if ANN_TIER in ann:
            try:
                tier = int(str(ann[ANN_TIER]).strip().lower().removeprefix("tier").strip(" -_"))
                if tier not in (1, 2, 3):
                    raise ValueError
            except ValueError:
                ctx.error(
                    e.doc,
                    e,
                    f"metadata.annotations[{ANN_TIER}]",
                    f"'{ann[ANN_TIER]}' is not a tier 1, 2 or 3",
                )
                tier = 3
        repo = ann.get(ANN_REPO, "")
        if not repo and ann.get(ANN_GITHUB):
            repo = f"https://github.com/{ann[ANN_GITHUB].strip('/')}"
        runbook = ann.get(ANN_RUNBOOK, "")
        for key, value, limit in (
            (ANN_REPO, repo, 500),
            (ANN_RUNBOOK, runbook, 500),
            (ANN_ONCALL, ann.get(ANN_ONCALL, ""), 200),
            (ANN_BRANCH, ann.get(ANN_BRANCH, ""), 200),
        ):
            if len(value) > limit:
                ctx.error(
                    e.doc, e, f"metadata.annotations[{key}]", f"is longer than {limit} characters"
                )
        stored_ann = {k: v for k, v in ann.items() if k not in SERVICE_MAPPED_ANNOTATIONS}
        if ANN_GITHUB in ann and ANN_REPO in ann:
            stored_ann[ANN_GITHUB] = ann[ANN_GITHUB]
        deps = set()
        for i, value in enumerate(_ref_list(ctx, e, "spec.dependsOn")):
            kind, slug = self._resolve(
                e, f"spec.dependsOn[{i}]", value, "component", ("component", "resource")
            )
            if kind:
                if kind == "component" and slug == e.slug:
                    ctx.error(
                        e.doc, e, f"spec.dependsOn[{i}]", "a component cannot depend on itself"
                    )
                    continue
                deps.add((kind, slug))
        apis = {}
        for fld in ("providesApis", "consumesApis"):
            apis[fld] = set()
            for i, value in enumerate(_ref_list(ctx, e, f"spec.{fld}")):
                _, slug = self._resolve(e, f"spec.{fld}[{i}]", value, "api")
                if slug:
                    apis[fld].add(slug)
        if e.spec.get("subcomponentOf") is not None:
            # syntax only: Backline does not store sub-components
            self._ref(
                e, "spec.subcomponentOf", e.spec["subcomponentOf"], "component", ("component",)
            )
        return {
            **self._common(e),
            "owner": squad,
            "system": self._system_ref(e),
            "type": _text(ctx, e, e.spec, "type", "spec.type", max_len=50) or "service",
            "lifecycle": self._lifecycle(e),
            "tier": tier,
            "repository_url": repo,
            "default_branch": ann.get(ANN_BRANCH, "") or "main",
            "runbook_url": runbook,
            "oncall": ann.get(ANN_ONCALL, ""),
            "links": _links(ctx, e),
            "annotations": stored_ann,
            "tags": frozenset(_tags(ctx, e)),
            "provides": frozenset(apis["providesApis"]),
            "consumes": frozenset(apis["consumesApis"]),
            "deps": frozenset(deps),
        }

    # ---- phase 4: compare with the database
    def _current(self, kind, obj):
        """The database row in the same shape as the desired dicts (FKs as slugs)."""
        t, s, d, sy = self.tribe_by_id, self.squad_by_id, self.domain_by_id, self.system_by_id
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
        if kind == "squad":
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
        if kind == "person":
            return {
                "name": obj.name,
                "email": obj.email,
                "picture": obj.picture,
                "memberships": frozenset(
                    (sq, r) for sq, (_, r) in self.db_memberships.get(obj.slug, {}).items()
                ),
            }
        base = {"name": obj.name, "description": obj.description}
        if kind == "domain":
            return {
                **base,
                "owner": s.get(obj.owner_id),
                "owner_tribe": t.get(obj.owner_tribe_id),
                "tags": obj.tags,
                "links": obj.links,
            }
        if kind == "system":
            return {
                **base,
                "owner": s.get(obj.owner_id),
                "owner_tribe": t.get(obj.owner_tribe_id),
                "domain": d.get(obj.domain_id),
                "tags": obj.tags,
                "links": obj.links,
            }
        if kind == "api":
            return {
                **base,
                "type": obj.type,
                "lifecycle": obj.lifecycle,
                "owner": s.get(obj.owner_id),
                "system": sy.get(obj.system_id),
                "definition": obj.definition,
                "tags": obj.tags,
                "links": obj.links,
            }
        if kind == "resource":
            return {
                **base,
                "type": obj.type,
                "owner": s.get(obj.owner_id),
                "system": sy.get(obj.system_id),
                "tags": obj.tags,
                "links": obj.links,
            }
        slug = obj.slug
        return {
            **base,
            "owner": s.get(obj.owner_id),
            "system": sy.get(obj.system_id),
            "type": obj.type,
            "lifecycle": obj.lifecycle,
            "tier": obj.tier,
            "repository_url": obj.repository_url,
            "default_branch": obj.default_branch,
            "runbook_url": obj.runbook_url,
            "oncall": obj.oncall,
            "links": obj.links,
            "annotations": obj.annotations,
            "tags": frozenset(self.db_tags.get(slug, {})),
            "provides": frozenset(self.db_provides.get(slug, {})),
            "consumes": frozenset(self.db_consumes.get(slug, {})),
            "deps": frozenset(self.db_deps.get(slug, {})),
        }

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
                have = self._current(kind, obj)
                if have == want:
                    counts["unchanged"] += 1
                else:
                    update[slug] = (want, have)
                    counts["updated"] += 1
            self.plan[kind] = {"create": create, "update": update}

    # ---- phase 5: permissions
    def _entity_for(self, kind, slug):
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
            where = f"{e.doc.file}: document {e.doc.index} ({e.ref})" if e else f"{kind} '{slug}'"
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
        for slug, want in self.plan["person"]["create"].items():
            need("person", slug, "create", sorted({s for s, _ in want["memberships"]}))
        for slug, (want, have) in self.plan["person"]["update"].items():
            need(
                "person",
                slug,
                "change",
                sorted({s for s, _ in want["memberships"] | have["memberships"]}),
            )
        for kind in ("domain", "system", "api", "resource", "component"):
            for slug, want in self.plan[kind]["create"].items():
                need(kind, slug, "create", [want["owner"]])
            for slug, (want, have) in self.plan[kind]["update"].items():
                need(kind, slug, "change", sorted({want["owner"], have["owner"]} - {None}))
        if denied:
            more = f" (and {len(denied) - 5} more)" if len(denied) > 5 else ""
            raise PermissionDenied("; ".join(denied[:5]) + more)

    # ---- phase 6: write
    def write(self):
        plan = self.plan

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
            ids = {s: o.pk for s, o in db.items()}
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
            self.db_tribes,
            {},
            ["name", "description", "kind", "parent", "email", "picture", "links"],
            late_fks=("parent",),
        )
        squad_ids = upsert(
            Squad,
            "squad",
            self.db_squads,
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
        person_ids = upsert(Person, "person", self.db_persons, {}, ["name", "email", "picture"])
        domain_ids = upsert(
            Domain,
            "domain",
            self.db_domains,
            {"owner": squad_ids, "owner_tribe": tribe_ids},
            ["name", "description", "owner", "owner_tribe", "tags", "links"],
        )
        system_ids = upsert(
            System,
            "system",
            self.db_systems,
            {"owner": squad_ids, "owner_tribe": tribe_ids, "domain": domain_ids},
            ["name", "description", "owner", "owner_tribe", "domain", "tags", "links"],
        )
        api_ids = upsert(
            Api,
            "api",
            self.db_apis,
            {"owner": squad_ids, "system": system_ids},
            [
                "name",
                "description",
                "type",
                "lifecycle",
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
            self.db_resources,
            {"owner": squad_ids, "system": system_ids},
            ["name", "description", "type", "owner", "system", "tags", "links"],
        )
        service_ids = upsert(
            Service,
            "component",
            self.db_services,
            {"owner": squad_ids, "system": system_ids},
            [
                "name",
                "description",
                "owner",
                "system",
                "type",
                "lifecycle",
                "tier",
                "repository_url",
                "default_branch",
                "runbook_url",
                "oncall",
                "links",
                "annotations",
            ],
        )
        # memberships
        m_new, m_update, m_delete = [], [], []
        for slug, want in {
            **plan["person"]["create"],
            **{s: w for s, (w, _) in plan["person"]["update"].items()},
        }.items():
            current = self.db_memberships.get(slug, {})
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
        missing_tags = sorted(all_tags - set(self.tag_ids))
        if missing_tags:
            Tag.objects.bulk_create(
                [Tag(name=t) for t in missing_tags], batch_size=BATCH, ignore_conflicts=True
            )
            self.tag_ids.update(Tag.objects.filter(name__in=missing_tags).values_list("name", "pk"))
        for attr, key, current_map, target_ids, target_field in (
            ("tags", "tags", self.db_tags, self.tag_ids, "tag_id"),
            ("provides_apis", "provides", self.db_provides, api_ids, "api_id"),
            ("consumes_apis", "consumes", self.db_consumes, api_ids, "api_id"),
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
            current = self.db_deps.get(slug, {})
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


def import_catalog(sources, actor, *, dry_run=False) -> ImportReport:
    """Import Backstage descriptors. ``sources``: ``[(name, text), ...]`` (multi-document YAML;
    use ``load_sources`` to read paths/URLs so Location targets can be followed).

    All-or-nothing: raises ``ImportFailed`` (``.errors``: every problem with file, document,
    entity and field) or ``PermissionDenied``, and then nothing is written. Returns an
    ``ImportReport`` with created/updated/unchanged counts per kind. ``actor=None`` means a
    trusted system caller.
    """
    imp = _Importer(sources, actor, dry_run)
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
        if not dry_run and actor is not None:
            from portal import audit

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
