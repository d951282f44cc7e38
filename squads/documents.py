"""A service's API documents built by hand: exactly what ``ServiceSerializer`` (detail) and
``ServiceListSerializer`` (list row) return, at a fraction of the cost, so an import can stitch
10,000 services in the same transaction (``tests/catalog/test_read_model.py`` checks the two
agree field for field).

``service`` comes with ``owner_slug`` and ``system_slug`` annotated
(``squads.stitch.services_for``), its lists from ``relations`` below, its full-text document
from ``documents_of``."""

from collections import defaultdict

from django.db import connection
from django.urls import reverse
from django.utils import timezone

from portal.lookups import array_param, many
from portal.urlsecrets import redact_credentials
from squads.fields import LIST_FIELDS, SERVICE_FIELDS
from squads.models import Dependency, Service

LINK_KEYS = ("url", "title", "icon", "type")


def _datetime(value):
    """DRF's ``DateTimeField`` output: ISO 8601 in the current time zone, ``Z`` for UTC."""
    if value is None:
        return None
    text = timezone.localtime(value).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _link(link):
    if not isinstance(link, dict):
        return {"url": str(link)}
    out = {k: str(link[k]) for k in LINK_KEYS if k in link and link[k] is not None}
    out.setdefault("url", "")
    return out


def _annotations(value):
    return {str(k): None if v is None else str(v) for k, v in value.items()}


def _field(service, name):
    if name in ("owner", "system"):
        return getattr(service, f"{name}_slug")  # annotated (or None)
    if name == "links":
        return [_link(link) for link in service.links]
    if name == "annotations":
        return _annotations(service.annotations)
    if name == "metrics_urls":
        return [str(u) for u in service.metrics_urls]
    if name == "tier":
        return int(service.tier)
    if name == "repository_url":  # write-only credentials, as RedactedURLField shows them
        return redact_credentials(service.repository_url)
    value = getattr(service, name)
    return value if value in ("", None) else str(value)


_PLACEHOLDER = "slug-placeholder"


def url_of(name, slug, _cache={}):  # noqa: B006 - each URL pattern, reversed once per process
    """``reverse(name, args=[slug])`` without a ``reverse()`` per entity (slugs need no
    quoting: letters, digits and ``-_.``).

    ``name`` is ``"<app>:<view>"`` of an app's HTML URL module, which the registry mounts at
    the site root (``portal.registry.urls``): it is reversed within that module, so a process
    that has served no request yet (an import command, a worker) does not load the whole
    URLconf for it (every app's views: 3 s here, most of it the SCIM views' models)."""
    if name not in _cache:
        app, _, view = name.rpartition(":")
        _cache[name] = reverse(view, urlconf=f"{app}.urls", args=[_PLACEHOLDER])
    return _cache[name].replace(_PLACEHOLDER, slug)


def service_url(slug):
    """``Service.get_absolute_url()``, see ``url_of``."""
    return url_of("squads:service_detail", slug)


def detail_document(service, card, rel) -> dict:
    """The ``GET /api/v1/services/<slug>/`` body."""
    pk = service.pk
    doc = {"slug": service.slug}
    for name in SERVICE_FIELDS:
        if name != "webhook_secret":  # write-only
            doc[name] = _field(service, name)
    doc.update(
        lifecycle_label=service.lifecycle_label,
        tags=rel["tags"].get(pk, []),
        provides_apis=rel["provides"].get(pk, []),
        consumes_apis=rel["consumes"].get(pk, []),
        dependencies=rel["deps"].get(pk, []),
        dependents=rel["dependents"].get(pk, []),
        has_webhook_secret=bool(service.webhook_secret),
        scorecard={"level": card.level, "percent": card.percent},
        url=service_url(service.slug),
        created_at=_datetime(service.created_at),
        updated_at=_datetime(service.updated_at),
    )
    return doc


def list_row(detail: dict) -> dict:
    """The row ``GET /api/v1/services/`` lists: a subset of the detail document."""
    return {k: detail[k] for k in LIST_FIELDS}


# The full-text document of a service (name and slug A, description B, tags C), computed by
# PostgreSQL and written with the row (its text form is valid tsvector input): no second pass.
DOCUMENT_SQL = """
SELECT s.id,
    setweight(to_tsvector('english'::regconfig, COALESCE(s.name, '')), 'A')
    || setweight(to_tsvector('simple'::regconfig, COALESCE(s.slug, '')), 'A')
    || setweight(to_tsvector('english'::regconfig, COALESCE(s.description, '')), 'B')
    || setweight(to_tsvector('simple'::regconfig, COALESCE((
        SELECT string_agg(t.name, ' ') FROM squads_service_tags st
        JOIN squads_tag t ON t.id = st.tag_id WHERE st.service_id = s.id), '')), 'C')
FROM squads_service s WHERE s.id = ANY(%s)
"""


def documents_of(ids) -> dict:
    """service id -> its search document (text form), PostgreSQL only."""
    if connection.vendor != "postgresql":
        return {}
    with connection.cursor() as cur:
        cur.execute(DOCUMENT_SQL, [array_param(ids)])
        return dict(cur.fetchall())


def relations(ids):
    """What the documents list of each service: tags, APIs, dependencies and dependents, as
    plain values in five queries (service id -> list, in the serializers' order)."""
    ids = many(ids)
    rel = {k: defaultdict(list) for k in ("tags", "provides", "consumes", "deps", "dependents")}
    for sid, name in (
        Service.tags.through.objects.filter(service_id__any=ids)
        .order_by("tag__name")
        .values_list("service_id", "tag__name")
    ):
        rel["tags"][sid].append(name)
    for key, through in (
        ("provides", Service.provides_apis.through),
        ("consumes", Service.consumes_apis.through),
    ):
        rows = through.objects.filter(service_id__any=ids).order_by("api__name", "api_id")
        for sid, slug in rows.values_list("service_id", "api__slug"):
            rel[key][sid].append(slug)
    deps = Dependency.objects.filter(source_id__any=ids).order_by("id")
    for pk, sid, service, resource in deps.values_list(
        "pk", "source_id", "target_service__slug", "target_resource__slug"
    ):
        kind = "service" if service is not None else "resource"
        rel["deps"][sid].append({"id": pk, "kind": kind, "slug": service or resource})
    dependents = Dependency.objects.filter(target_service_id__any=ids).order_by("id")
    for tid, slug in dependents.values_list("target_service_id", "source__slug"):
        rel["dependents"][tid].append(slug)
    return rel
