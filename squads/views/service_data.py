"""What the service page shows, read in ONE prepared statement on PostgreSQL: the service with
its owner, tribe, system and domain, its stitched tags and scorecard, its dependencies both ways
(with the other ends' owners), the APIs it provides and consumes (with their owners) and its
squad's people. The ORM's four queries cost more Python to compile and turn into instances than
the page's template does to render (issue 16: the page under write churn at half the bare
view's throughput). The instances built here are the models' own (``Model.from_db``), with the
fields the page reads loaded and the others deferred, so the template, the panels and the
permission check see what the ORM would have given them. Another database: the ORM's queries.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import connection
from django.db.models import Q
from django.http import Http404

from portal.leanpath import prepared_row
from squads import models
from squads.stitch import HEAVY, restitch

# models.Service fields the page and its panels never read (descriptors, secrets, metric endpoints):
# deferred, loaded on access as the ORM would
UNREAD = {*HEAVY, "annotations", "webhook_secret", "metrics_urls"}


@dataclass
class ServicePage:
    service: models.Service
    tags: list
    scorecard: dict
    deps: list = field(default_factory=list)
    dependents: list = field(default_factory=list)
    provides: list = field(default_factory=list)
    consumes: list = field(default_factory=list)
    members: list = field(default_factory=list)


def _columns(model, alias: str, names=None):
    """(attnames, SQL column list) of ``model``'s concrete fields (``names`` only, or all but
    UNREAD), in the model's field order (``from_db`` takes them so); JSON read as ``json`` so
    psycopg decodes it (Django loads ``jsonb`` as text and decodes it in its compiler)."""
    fields = [
        f
        for f in model._meta.concrete_fields
        if (f.attname in names if names is not None else f.attname not in UNREAD)
    ]
    sql = ", ".join(
        f'{alias}."{f.column}"' + ("::json" if f.get_internal_type() == "JSONField" else "")
        for f in fields
    )
    return [f.attname for f in fields], sql


SERVICE_NAMES, SERVICE_SQL = _columns(models.Service, "s")
OWNER_NAMES, OWNER_SQL = _columns(
    models.Squad, "q", {"id", "slug", "name", "chat_channel", "tribe_id"}
)
TRIBE_NAMES, TRIBE_SQL = _columns(models.Tribe, "tr", {"id", "slug", "name"})
SYSTEM_NAMES, SYSTEM_SQL = _columns(models.System, "sy", {"id", "slug", "name", "domain_id"})
DOMAIN_NAMES, DOMAIN_SQL = _columns(models.Domain, "dm", {"id", "slug", "name"})
END = ("id", "slug", "name", "lifecycle", "owner_id")  # a dependency's other end, in field order
END_NAMES = [f.attname for f in models.Service._meta.concrete_fields if f.attname in END]
SQUAD_TABLE = models.Squad._meta.db_table


def _end(alias: str, owner: str) -> str:
    return ", ".join([*(f"{alias}.{n}" for n in END_NAMES), f"{owner}.name"])


SQL = f"""
SELECT {SERVICE_SQL}, {OWNER_SQL}, {TRIBE_SQL}, {SYSTEM_SQL}, {DOMAIN_SQL},
  v.service_id IS NOT NULL, (v.detail -> 'tags')::json, v.scorecard::json,
  (SELECT json_agg(json_build_array(d.id, d.source_id, d.target_service_id, d.target_resource_id,
      {_end("src", "so")}, {_end("ts", "tso")}, r.id, r.name, r.type))
    FROM {models.Dependency._meta.db_table} d
    JOIN {models.Service._meta.db_table} src ON src.id = d.source_id
    LEFT JOIN {SQUAD_TABLE} so ON so.id = src.owner_id
    LEFT JOIN {models.Service._meta.db_table} ts ON ts.id = d.target_service_id
    LEFT JOIN {SQUAD_TABLE} tso ON tso.id = ts.owner_id
    LEFT JOIN {models.Resource._meta.db_table} r ON r.id = d.target_resource_id
    WHERE d.source_id = s.id OR d.target_service_id = s.id),
  (SELECT json_agg(json_build_array(m.id, m.person_id, m.squad_id, m.role, p.id, p.name, p.user_id)
      ORDER BY m.role, p.name)
    FROM {models.Membership._meta.db_table} m JOIN {models.Person._meta.db_table} p ON p.id = m.person_id
    WHERE m.squad_id = s.owner_id),
  (SELECT json_agg(json_build_array(a.id, a.slug, a.name, a.type, a.owner_id, ao.name))
    FROM {models.Api._meta.db_table} a LEFT JOIN {SQUAD_TABLE} ao ON ao.id = a.owner_id
    WHERE a.slug IN (SELECT jsonb_array_elements_text(v.detail -> 'provides_apis')
                     UNION SELECT jsonb_array_elements_text(v.detail -> 'consumes_apis'))),
  (v.detail -> 'provides_apis')::json, (v.detail -> 'consumes_apis')::json
FROM {models.Service._meta.db_table} s
LEFT JOIN {SQUAD_TABLE} q ON q.id = s.owner_id
LEFT JOIN {models.Tribe._meta.db_table} tr ON tr.id = q.tribe_id
LEFT JOIN {models.System._meta.db_table} sy ON sy.id = s.system_id
LEFT JOIN {models.Domain._meta.db_table} dm ON dm.id = sy.domain_id
LEFT JOIN {models.ServiceView._meta.db_table} v ON v.service_id = s.id
WHERE s.slug = %(slug)s
"""


def _take(row, at: int, model, names):
    """The instance of ``model`` from ``row[at:]`` (None when its id is NULL: no such relation)
    and the position after it."""
    values = row[at : at + len(names)]
    end = at + len(names)
    if values[0] is None:
        return None, end
    return model.from_db("default", names, values), end


def _squad(pk, name):
    return None if pk is None else models.Squad.from_db("default", ["id", "name"], [pk, name])


def _end_service(values):
    """A dependency's other end (its fields in END order, then its owner's name)."""
    if values[0] is None:
        return None
    svc = models.Service.from_db("default", END_NAMES, values[: len(END_NAMES)])
    svc.owner = _squad(svc.owner_id, values[len(END_NAMES)])
    return svc


def service_page(slug: str) -> ServicePage:
    """The page's data for ``slug`` (Http404 when there is no such service)."""
    if connection.vendor != "postgresql":
        return _service_page_orm(slug)
    row = prepared_row(SQL, {"slug": slug})
    if row is None:
        raise Http404("No such service.")
    service, at = _take(row, 0, models.Service, SERVICE_NAMES)
    owner, at = _take(row, at, models.Squad, OWNER_NAMES)
    tribe, at = _take(row, at, models.Tribe, TRIBE_NAMES)
    system, at = _take(row, at, models.System, SYSTEM_NAMES)
    domain, at = _take(row, at, models.Domain, DOMAIN_NAMES)
    stitched, tags, scorecard, deps, members, apis, provides, consumes = row[at:]
    if not stitched:  # written by raw SQL and not stitched yet: stitch it now
        restitch([service.pk])
        return service_page(slug)
    if owner is not None:
        owner.tribe = tribe
    if system is not None:
        system.domain = domain
    service.owner, service.system = owner, system
    page = ServicePage(service, tags or [], scorecard)
    _place(page, _dependencies(page, deps or []))
    page.members = [_member(m) for m in members or []]
    found = {}
    for pk, api_slug, name, kind, owner_id, owner_name in apis or []:
        api = models.Api.from_db(
            "default",
            ["id", "slug", "name", "type", "owner_id"],
            [pk, api_slug, name, kind, owner_id],
        )
        api.owner = _squad(owner_id, owner_name)
        found[api_slug] = api
    _place_apis(page, found, provides, consumes)
    return page


def _member(values):
    m = models.Membership.from_db("default", ["id", "person_id", "squad_id", "role"], values[:4])
    m.person = models.Person.from_db("default", ["id", "name", "user_id"], values[4:])
    return m


def _dependencies(page: ServicePage, rows):
    """The service's dependencies both ways, from the statement's JSON rows."""
    n = len(END_NAMES) + 1
    pk = page.service.pk
    for values in rows:
        d = models.Dependency.from_db(
            "default", ["id", "source_id", "target_service_id", "target_resource_id"], values[:4]
        )
        source = _end_service(values[4 : 4 + n])
        target = _end_service(values[4 + n : 4 + 2 * n])
        d.source = page.service if d.source_id == pk else source
        d.target_service = (
            page.service if target is not None and d.target_service_id == pk else target
        )
        r_id, r_name, r_type = values[4 + 2 * n :]
        d.target_resource = (
            None
            if r_id is None
            else models.Resource.from_db("default", ["id", "name", "type"], [r_id, r_name, r_type])
        )
        yield d


def _place(page: ServicePage, dependencies) -> None:
    """What the service depends on (services by name, then resources) and what depends on it
    (by name), from its dependencies both ways."""
    pk = page.service.pk
    for d in dependencies:
        if d.source_id == pk:
            page.deps.append(d)
        if d.target_service_id == pk:
            page.dependents.append(d)
    page.deps.sort(
        key=lambda d: (d.target_service is None, _name(d.target_service or d.target_resource))
    )
    page.dependents.sort(key=lambda d: d.source.name)


def _place_apis(page: ServicePage, found: dict, provides, consumes) -> None:
    """The APIs the service provides and consumes, in its detail document's order (``found``:
    slug -> Api with its owner)."""
    page.provides = [found[s] for s in provides or [] if s in found]
    page.consumes = [found[s] for s in consumes or [] if s in found]


def _name(obj):
    return obj.name if obj is not None else ""


# --- another database (SQLite: ``make run``): the ORM ---------------------------------------
# what the page shows of a dependency's ends (not their descriptors: large JSON)
DEPENDENCY_COLUMNS = (
    "source_id",
    "target_service_id",
    "target_resource_id",
    *(f"{end}__{f}" for end in ("source", "target_service") for f in ("slug", "name", "lifecycle")),
    "source__owner__name",
    "target_service__owner__name",
    "target_resource__name",
    "target_resource__type",
)


def _service_page_orm(slug: str) -> ServicePage:
    try:
        service = (
            models.Service.objects.defer(*UNREAD)
            .select_related("owner", "owner__tribe", "system", "system__domain", "view")
            .defer("view__row", "view__document")
            .get(slug=slug)
        )
    except models.Service.DoesNotExist:
        raise Http404("No such service.") from None
    try:
        view = service.view
    except models.ServiceView.DoesNotExist:
        restitch([service.pk])
        view = models.ServiceView.objects.get(pk=service.pk)
    page = ServicePage(service, view.detail["tags"], view.scorecard)
    rows = (
        models.Dependency.objects.filter(Q(source_id=service.pk) | Q(target_service_id=service.pk))
        .select_related(
            "source", "source__owner", "target_service", "target_service__owner", "target_resource"
        )
        .only(*DEPENDENCY_COLUMNS)
    )
    _place(page, rows)
    provides, consumes = view.detail["provides_apis"], view.detail["consumes_apis"]
    if provides or consumes:
        found = {
            a.slug: a
            for a in models.Api.objects.filter(slug__in=[*provides, *consumes]).select_related(
                "owner"
            )
        }
        _place_apis(page, found, provides, consumes)
    if service.owner_id:
        page.members = list(
            models.Membership.objects.filter(squad_id=service.owner_id)
            .select_related("person")
            .only("role", "person__name", "person__user_id")
            .order_by("role", "person__name")
        )
    return page
