"""Stitching at write time (Backstage's lesson): every service's read form (``ServiceView``:
its list row, API detail document, scorecard and search vector) is recomputed in the
transaction of each write that changes it, for exactly the services affected.

Which services a write affects is known per model: ``RESOLVERS`` below for the catalog's own
(a service itself and the services depending on it, whose scorecard reads its lifecycle; a
squad's, tribe's or system's services; both ends of a dependency...), and for the models other
apps' scorecard rules read (``ScorecardSource.inputs`` in the registry) their ``service``
foreign key, ``services`` many-to-many field, or the ``affects`` functions they register.
Every door is covered: ``save()`` and ``delete()`` (cascades included: the services are found
before the rows go), many-to-many changes, and ``QuerySet.update()`` / ``bulk_create()`` /
``bulk_update()`` of ``WatchedQuerySet`` managers. Code writing with COPY or raw SQL (the
Backstage importer, seeds) calls ``restitch(ids)`` itself; ``restitch_all()`` rebuilds all.

``batch()`` collects the services of many writes and stitches each once when it ends (still
inside the caller's transaction).
"""

import threading
from collections import defaultdict
from collections.abc import Iterable
from contextlib import contextmanager

from django.apps import apps
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.db.models.signals import m2m_changed, post_delete, post_migrate, post_save, pre_delete

from portal.cachegen import rows_changed, rows_changing
from portal.registry import registry
from squads import bulk, documents, scorecards
from squads.models import Dependency, Service, ServiceView

CHUNK = 2000
COPY_FROM = 500  # larger batches (imports) are written with COPY
_state = threading.local()

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
        cur.execute(DOCUMENT_SQL, [list(ids)])
        return dict(cur.fetchall())


# --- stitching ----------------------------------------------------------------------------------
def restitch(service_ids: Iterable[int]) -> None:
    """Recompute the read form of these services now (or when the current ``batch()`` ends)."""
    ids = {int(i) for i in service_ids if i}
    if not ids:
        return
    stack = getattr(_state, "batches", None)
    if stack:
        stack[-1].update(ids)
        return
    ids_sorted = sorted(ids)
    for start in range(0, len(ids_sorted), CHUNK):
        _stitch(ids_sorted[start : start + CHUNK])


@contextmanager
def batch():
    """Writes inside collect their services; each is stitched once at the end (nested batches
    hand theirs to the outer one). Nothing is stitched when the block raises."""
    stack = getattr(_state, "batches", None)
    if stack is None:
        stack = _state.batches = []
    stack.append(set())
    try:
        yield stack[-1]
    except BaseException:
        stack.pop()
        raise
    restitch(stack.pop())


def restitch_all() -> int:
    """Rebuild every service's read form (after COPY seeds, raw SQL, a restore)."""
    ids = list(Service.objects.order_by("pk").values_list("pk", flat=True))
    with batch_off():
        restitch(ids)
    return len(ids)


@contextmanager
def batch_off():
    saved = getattr(_state, "batches", None)
    _state.batches = []
    try:
        yield
    finally:
        _state.batches = saved if saved is not None else []


HEAVY = ("backstage_entity", "backstage_seen")  # descriptors: no document shows them


def services_for(ids):
    """The services (without their descriptors) and their owner's, tribe's and system's
    slugs, in one query."""
    return (
        Service.objects.filter(pk__any=list(ids))
        .defer(*HEAVY)
        .annotate(
            owner_slug=F("owner__slug"),
            tribe_slug=F("owner__tribe__slug"),
            system_slug=F("system__slug"),
        )
    )


def relations(ids):
    """What the documents list of each service: tags, APIs, dependencies and dependents, as
    plain values in five queries (service id -> list, in the serializers' order)."""
    ids = list(ids)
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


def _card_documents(cards):
    """service id -> its scorecard document; services with the same results share one dict
    (an import's 10,000 new services have a handful of distinct cards), built once and
    encoded once by ``bulk.insert``."""
    shared, out = {}, {}
    for pk, card in cards.items():
        key = (card.level, *((r.rule.key, r.passed) for r in card.results))
        doc = shared.get(key)
        if doc is None:
            doc = shared[key] = card.as_dict()
        out[pk] = doc
    return out


def _view_row(service, card, card_doc, rel):
    detail = documents.detail_document(service, card, rel)
    return {
        "service_id": service.pk,
        "slug": service.slug,
        "name": service.name,
        "owner_slug": service.owner_slug or "",
        "tribe_slug": service.tribe_slug or "",
        "system_slug": service.system_slug or "",
        "type": service.type,
        "lifecycle": service.lifecycle,
        "tier": service.tier,
        "level": card.level or "",
        "updated_at": service.updated_at,
        "row": documents.list_row(detail),
        "detail": detail,
        "scorecard": card_doc,
    }


def _stitch(ids):
    services = list(services_for(ids))
    cards = scorecards.evaluate(services)
    rel = relations(ids)
    texts = documents_of(ids)
    card_docs = _card_documents(cards)
    rows = [_view_row(s, cards[s.pk], card_docs[s.pk], rel) for s in services]
    for row in rows:
        row["document"] = texts.get(row["service_id"])
    present = {s.pk for s in services}
    # a row left by a service deleted with raw SQL must not block its successor's slug, and a
    # deleted service's row goes
    slugs = [s.slug for s in services]
    stale = [i for i in ids if i not in present]
    ServiceView.objects.filter(
        Q(pk__any=stale) | (Q(slug__any=slugs) & ~Q(pk__any=list(present)))
    ).delete()
    if len(rows) > COPY_FROM and connection.vendor == "postgresql":
        try:
            with transaction.atomic():  # a savepoint: a concurrent stitch of one of them wins
                ServiceView.objects.filter(pk__any=list(present)).delete()
                bulk.insert(ServiceView, rows, with_pk=True)
            return
        except IntegrityError:
            pass  # another transaction stitched one of these meanwhile: upsert them instead
    # two transactions stitching the same service (a pipeline run finishing while its service
    # is edited) wait for each other on the row instead of one failing on the key
    bulk.upsert(ServiceView, rows, key="service_id", casts={"document": "tsvector"})


# --- which services a write affects -------------------------------------------------------------
def _ids(qs, field="pk"):
    return qs.order_by().values_list(field, flat=True)


def _service_and_dependents(pks):
    return [*pks, *_ids(Dependency.objects.filter(target_service_id__any=pks), "source_id")]


def _dependency_ends(pks):
    rows = Dependency.objects.filter(pk__any=pks).values_list("source_id", "target_service_id")
    return [i for pair in rows for i in pair if i]


def _owned_by(lookup):
    return lambda pks: _ids(Service.objects.filter(**{f"{lookup}__any": pks}))


def _through_services(through, lookup):
    return lambda pks: _ids(through.objects.filter(**{f"{lookup}__any": pks}), "service_id")


def _api_services(pks):
    return [
        *_through_services(Service.provides_apis.through, "api_id")(pks),
        *_through_services(Service.consumes_apis.through, "api_id")(pks),
    ]


def _membership_services(pks):
    from squads.models import Membership

    squads = _ids(Membership.objects.filter(pk__any=pks), "squad_id")
    return _ids(Service.objects.filter(owner_id__any=list(squads)))


# label -> (fields that matter or None for all, fn(pks) -> service ids)
RESOLVERS = {
    "squads.Service": (None, _service_and_dependents),
    "squads.Dependency": (None, _dependency_ends),
    "squads.Squad": ({"slug", "tribe"}, _owned_by("owner_id")),
    "squads.Tribe": ({"slug"}, _owned_by("owner__tribe_id")),
    "squads.System": ({"slug"}, _owned_by("system_id")),
    "squads.Membership": (None, _membership_services),
    "squads.Tag": ({"name"}, _through_services(Service.tags.through, "tag_id")),
    "squads.Api": ({"slug"}, _api_services),
}


def _default_resolver(model):
    """A model's own way to its services: a ``service`` FK or a ``services`` m2m field."""
    names = {f.name: f for f in model._meta.get_fields()}
    field = names.get("service")
    if field is not None and (field.many_to_one or field.one_to_one) and field.concrete:
        return lambda pks: _ids(model.objects.filter(pk__any=pks), "service_id")
    field = names.get("services")
    if field is not None and field.many_to_many and field.concrete:
        through = field.remote_field.through
        own = next(f.name for f in through._meta.fields if f.related_model is model)
        return _through_services(through, f"{own}_id")
    raise LookupError(
        f"{model._meta.label} is a scorecard input with no service field: register "
        "affects={label: fn(pks) -> service ids}"
    )


def resolvers():
    """label -> (fields, fn) for every model a service's read form depends on."""
    found = dict(RESOLVERS)
    for source in [*registry.scorecards, *registry.catalog_columns]:
        for label, fields in source.inputs.items():
            model = apps.get_model(label)
            fn = source.affects.get(label) or _default_resolver(model)
            have = found.get(label)
            if have is None:
                found[label] = (None if fields is None else set(fields), fn)
            elif have[0] is not None:
                found[label] = (None if fields is None else {*have[0], *fields}, have[1])
    return found


# --- signals ------------------------------------------------------------------------------------
def _relevant(wanted, changed):
    if wanted is None or changed is None:
        return True
    changed = set(changed)
    return bool(changed & wanted) or bool(changed & {f + "_id" for f in wanted})


def _connect_model(label, wanted, fn):
    model = apps.get_model(label)
    uid = f"stitch:{label}"

    def on_save(sender, instance, update_fields=None, **kw):
        if _relevant(wanted, update_fields):
            restitch(fn([instance.pk]))

    def before_delete(sender, instance, **kw):
        instance._stitch_ids = set(fn([instance.pk]))

    def on_delete(sender, instance, **kw):
        restitch(getattr(instance, "_stitch_ids", ()))

    def before_update(sender, fields=None, pks=None, **kw):
        if pks and _relevant(wanted, fields):  # the services the rows belong to before it
            _state.__dict__.setdefault("before", {})[id(pks)] = set(fn(pks))

    def on_rows(sender, fields=None, pks=None, **kw):
        before = getattr(_state, "before", {}).pop(id(pks), set())
        if _relevant(wanted, fields) and pks:
            restitch({*before, *fn(pks)})

    post_save.connect(on_save, sender=model, weak=False, dispatch_uid=uid)
    pre_delete.connect(before_delete, sender=model, weak=False, dispatch_uid=uid)
    post_delete.connect(on_delete, sender=model, weak=False, dispatch_uid=uid)
    rows_changing.connect(before_update, sender=model, weak=False, dispatch_uid=uid)
    rows_changed.connect(on_rows, sender=model, weak=False, dispatch_uid=uid)
    for field in model._meta.local_many_to_many:
        if wanted is None or field.name in wanted:
            m2m_changed.connect(
                _on_m2m,
                sender=field.remote_field.through,
                weak=False,
                dispatch_uid=uid + field.name,
            )


def _m2m_services(sender, instance, model, pk_set):
    if isinstance(instance, Service):
        return {instance.pk}
    if model is Service:
        if pk_set is not None:
            return set(pk_set)
        own = next(f.name for f in sender._meta.fields if f.related_model is type(instance))
        return set(_ids(sender.objects.filter(**{f"{own}_id": instance.pk}), "service_id"))
    return set()


def _on_m2m(sender, instance, action, model, pk_set=None, **kw):
    if action == "pre_clear":
        instance._stitch_m2m = _m2m_services(sender, instance, model, None)
    elif action in ("post_add", "post_remove"):
        restitch(_m2m_services(sender, instance, model, pk_set))
    elif action == "post_clear":
        restitch(getattr(instance, "_stitch_m2m", ()))


def _backfill(sender, **kw):
    """After migrate: services with no read form yet (rows older than it) get one."""
    if sender.name != "squads":
        return
    missing = list(_ids(Service.objects.filter(view__isnull=True)))
    with batch_off():
        restitch(missing)


def _disconnect_model(label):
    model = apps.get_model(label)
    uid = f"stitch:{label}"
    for signal in (post_save, pre_delete, post_delete, rows_changing, rows_changed):
        signal.disconnect(sender=model, dispatch_uid=uid)
    for field in model._meta.local_many_to_many:
        m2m_changed.disconnect(sender=field.remote_field.through, dispatch_uid=uid + field.name)


def connect(labels=None) -> None:
    """Wire the resolvers of ``labels`` (all when None) with every field registered so far;
    called again as other apps register scorecard sources and catalog columns."""
    found = resolvers()
    for label in found if labels is None else labels:
        _disconnect_model(label)
        _connect_model(label, *found[label])
    post_migrate.connect(_backfill, weak=False, dispatch_uid="stitch:backfill")
