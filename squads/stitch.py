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

import json
import threading
from collections import defaultdict
from collections.abc import Iterable
from contextlib import contextmanager

from django.apps import apps
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.db.models.signals import (
    m2m_changed,
    post_delete,
    post_migrate,
    post_save,
    pre_delete,
    pre_save,
)

from portal.cachegen import rows_changed, rows_changing
from portal.lookups import many
from portal.registry import registry
from squads import bulk, documents, rowhtml, scorecards
from squads.documents import documents_of, relations
from squads.models import Dependency, Service, ServiceView

CHUNK = 2000
COPY_FROM = 500  # larger batches (imports) are written with COPY
_state = threading.local()


# --- stitching ----------------------------------------------------------------------------------
def restitch(service_ids: Iterable[int], sources=None) -> None:
    """Recompute the read form of these services now (or when the current ``batch()`` ends).
    ``sources`` (scorecard source keys): only inputs of those sources changed, so only their
    rules are checked again (``_stitch_cards``); None: everything."""
    ids = {int(i) for i in service_ids if i}
    if not ids:
        return
    stack = getattr(_state, "batches", None)
    if stack:
        stack[-1].add(ids, sources)
        return
    ids_sorted = sorted(ids)
    for start in range(0, len(ids_sorted), CHUNK):
        chunk = ids_sorted[start : start + CHUNK]
        if sources is None:
            _stitch(chunk)
        else:
            _stitch_cards(chunk, frozenset(sources))


class _Pending:
    """The services a ``batch()`` collected: in full, or for some sources' rules only."""

    def __init__(self):
        self.full: set[int] = set()
        self.cards: dict[int, set[str]] = defaultdict(set)

    def add(self, ids, sources):
        if sources is None:
            self.full.update(ids)
        else:
            for i in ids:
                self.cards[i].update(sources)

    def flush(self):
        restitch(self.full)
        by_sources = defaultdict(set)
        for i, keys in self.cards.items():
            if i not in self.full:
                by_sources[frozenset(keys)].add(i)
        for keys, ids in by_sources.items():
            restitch(ids, keys)


@contextmanager
def batch():
    """Writes inside collect their services; each is stitched once at the end (nested batches
    hand theirs to the outer one). Nothing is stitched when the block raises."""
    stack = getattr(_state, "batches", None)
    if stack is None:
        stack = _state.batches = []
    stack.append(_Pending())
    try:
        yield stack[-1]
    except BaseException:
        stack.pop()
        raise
    stack.pop().flush()


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
    slugs and names, in one query."""
    return (
        Service.objects.filter(pk__any=many(ids))
        .defer(*HEAVY)
        .annotate(
            owner_slug=F("owner__slug"),
            tribe_slug=F("owner__tribe__slug"),
            system_slug=F("system__slug"),
            owner_name=F("owner__name"),
            tribe_name=F("owner__tribe__name"),
            system_name=F("system__name"),
        )
    )


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
    row = documents.list_row(detail)
    names = (service.owner_name or "", service.tribe_name or "", service.system_name or "")
    return {
        "service_id": service.pk,
        "slug": service.slug,
        "name": service.name,
        "owner_slug": service.owner_slug or "",
        "tribe_slug": service.tribe_slug or "",
        "system_slug": service.system_slug or "",
        "owner_name": service.owner_name or "",
        "tribe_name": service.tribe_name or "",
        "system_name": service.system_name or "",
        "type": service.type,
        "lifecycle": service.lifecycle,
        "tier": service.tier,
        "level": card.level or "",
        "updated_at": service.updated_at,
        "row": row,
        "detail": detail,
        "scorecard": card_doc,
        "html_head": rowhtml.head(row, *names),
        "html_tail": rowhtml.tail(row),
    }


def _stitch(ids):
    services = list(services_for(ids))
    cards = scorecards.evaluate(services)
    rel = relations(ids)
    texts = documents_of(ids)
    card_docs = _card_documents(cards)

    def rows():
        """Built as they are sent: with COPY, PostgreSQL stores each row (its indexes, its
        documents out of line) on the other core while the next is built."""
        for s in services:
            row = _view_row(s, cards[s.pk], card_docs[s.pk], rel)
            row["document"] = texts.get(s.pk)
            yield row

    present = {s.pk for s in services}
    # a row left by a service deleted with raw SQL must not block its successor's slug, and a
    # deleted service's row goes
    slugs = [s.slug for s in services]
    stale = [i for i in ids if i not in present]
    ServiceView.objects.filter(
        Q(pk__any=stale) | (Q(slug__any=many(slugs)) & ~Q(pk__any=many(present)))
    ).delete()
    if len(services) > COPY_FROM and connection.vendor == "postgresql":
        try:
            with transaction.atomic():  # a savepoint: a concurrent stitch of one of them wins
                ServiceView.objects.filter(pk__any=many(present)).delete()
                bulk.insert(ServiceView, rows(), with_pk=True)
            return
        except IntegrityError:
            pass  # another transaction stitched one of these meanwhile: upsert them instead
    # two transactions stitching the same service (a pipeline run finishing while its service
    # is edited) wait for each other on the row instead of one failing on the key
    bulk.upsert(ServiceView, list(rows()), key="service_id", casts={"document": "tsvector"})


CARDS_SQL = """
UPDATE squads_serviceview v SET level = n.level, scorecard = n.card,
    detail = jsonb_set(v.detail, '{scorecard}', n.short),
    "row" = jsonb_set(v."row", '{scorecard}', n.short)
FROM (SELECT unnest(%s::int[]) AS id, unnest(%s::text[]) AS level,
    unnest(%s::text[])::jsonb AS card, unnest(%s::text[])::jsonb AS short) n
WHERE v.service_id = n.id AND v.scorecard IS DISTINCT FROM n.card
"""


def _stitch_cards(ids, keys):
    """After a write to inputs of the scorecard sources ``keys`` alone (a run finishing): the
    rules of those sources checked again, the others' results read from the stored scorecard,
    and only the scorecard (its column, level, and the ``scorecard`` key of the list row and
    detail, set in place) written, for the services whose card changed. Some 9 queries
    instead of ~23; a full stitch when a service has no read form (or is gone) or the stored cards
    list other rules. The rows are locked first: a full stitch of one of them (its service
    edited meanwhile) waits, or is waited for and its card read, never overwritten."""
    if connection.vendor != "postgresql":
        return _stitch(ids)
    with transaction.atomic():
        locked = ServiceView.objects.select_for_update().filter(pk__any=ids).order_by("pk")
        stored = dict(locked.values_list("pk", "scorecard"))
        services = list(services_for(ids))
        cards = None
        if len(stored) == len(services) == len(ids):
            cards = scorecards.reevaluate(services, stored, keys)
        if cards is None:
            return _stitch(ids)
        _write_cards(cards, stored)


def _write_cards(cards, stored):
    docs = {pk: card.as_dict() for pk, card in cards.items()}
    changed = [pk for pk, doc in docs.items() if doc != stored[pk]]
    if not changed:
        return
    short = [{"level": cards[pk].level, "percent": cards[pk].percent} for pk in changed]
    with connection.cursor() as cur:
        cur.execute(
            CARDS_SQL,
            [
                changed,
                [cards[pk].level or "" for pk in changed],
                [json.dumps(docs[pk]) for pk in changed],
                [json.dumps(doc) for doc in short],
            ],
        )


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
    "squads.Squad": ({"slug", "name", "tribe"}, _owned_by("owner_id")),
    "squads.Tribe": ({"slug", "name"}, _owned_by("owner__tribe_id")),
    "squads.System": ({"slug", "name"}, _owned_by("system_id")),
    "squads.Membership": (None, _membership_services),
    "squads.Tag": ({"name"}, _through_services(Service.tags.through, "tag_id")),
    "squads.Api": ({"slug"}, _api_services),
}


def _default_resolver(model, rows=None):
    """A model's own way to its services: a ``service`` FK or a ``services`` m2m field; with
    ``rows`` (a ``Q``), only the services of the rows matching it."""
    names = {f.name: f for f in model._meta.get_fields()}
    matching = model.objects.all() if rows is None else model.objects.filter(rows)
    field = names.get("service")
    if field is not None and (field.many_to_one or field.one_to_one) and field.concrete:
        return lambda pks: _ids(matching.filter(pk__any=pks), "service_id")
    field = names.get("services")
    if field is not None and field.many_to_many and field.concrete:
        through = field.remote_field.through
        own = next(f.name for f in through._meta.fields if f.related_model is model)
        if rows is None:
            return _through_services(through, f"{own}_id")
        return lambda pks: _through_services(through, f"{own}_id")(
            _ids(matching.filter(pk__any=pks))
        )
    raise LookupError(
        f"{model._meta.label} is a scorecard input with no service field: register "
        "affects={label: fn(pks) -> service ids}"
    )


def _resolver(model, fn, rows):
    """``fn`` (or the model's own way to its services) over the rows matching ``rows``."""
    if fn is None:
        return _default_resolver(model, rows)
    if rows is None:
        return fn
    return lambda pks: fn(list(_ids(model.objects.filter(rows).filter(pk__any=pks))))


def _merge(have, fields, fn, rows):
    """Two sources reading one model: the union of their fields and of their rows."""
    if have is None:
        return None if fields is None else set(fields), fn, rows
    had_fields, had_fn, had_rows = have
    fields = None if had_fields is None or fields is None else {*had_fields, *fields}
    rows = None if had_rows is None or rows is None else had_rows | rows
    return fields, had_fn or fn, rows


def resolvers():
    """label -> (fields, fn, sources) for every model a service's read form depends on: the
    catalog's own (sources None: a write re-stitches all of it) and what the scorecard rules
    read (sources: whose rules to check again) (catalog columns are loaded live with each page,
    no read form holds them: their writes stitch nothing)."""
    found = {label: (fields, fn, None) for label, (fields, fn) in RESOLVERS.items()}
    readers = defaultdict(set)  # label -> the scorecard sources reading it
    for source in registry.scorecards:
        for label, fields in source.inputs.items():
            rows = source.rows.get(label)
            found[label] = _merge(found.get(label), fields, source.affects.get(label), rows)
            readers[label].add(source.key)
    return {
        label: (
            fields,
            _resolver(apps.get_model(label), fn, rows),
            None if label in RESOLVERS else frozenset(readers[label]),
        )
        for label, (fields, fn, rows) in found.items()
    }


# --- signals ------------------------------------------------------------------------------------
def _relevant(wanted, changed):
    if wanted is None or changed is None:
        return True
    changed = set(changed)
    return bool(changed & wanted) or bool(changed & {f + "_id" for f in wanted})


def _connect_model(label, wanted, fn, sources):
    model = apps.get_model(label)
    uid = f"stitch:{label}"

    def before_save(sender, instance, update_fields=None, **kw):
        # the services of the row as it was: a save may move it to another service, or out of
        # the rows a scorecard reads (a finished run saved back to queued)
        if not instance._state.adding and instance.pk and _relevant(wanted, update_fields):
            instance._stitch_before = set(fn([instance.pk]))

    def on_save(sender, instance, update_fields=None, **kw):
        if _relevant(wanted, update_fields):
            ids = {*instance.__dict__.pop("_stitch_before", ()), *fn([instance.pk])}
            restitch(ids, sources)

    def before_delete(sender, instance, **kw):
        instance._stitch_ids = set(fn([instance.pk]))

    def on_delete(sender, instance, **kw):
        restitch(getattr(instance, "_stitch_ids", ()), sources)

    def before_update(sender, fields=None, pks=None, **kw):
        if pks and _relevant(wanted, fields):  # the services the rows belong to before it
            _state.__dict__.setdefault("before", {})[id(pks)] = set(fn(pks))

    def on_rows(sender, fields=None, pks=None, **kw):
        before = getattr(_state, "before", {}).pop(id(pks), set())
        if _relevant(wanted, fields) and pks:
            restitch({*before, *fn(pks)}, sources)

    pre_save.connect(before_save, sender=model, weak=False, dispatch_uid=uid)
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
    for signal in (pre_save, post_save, pre_delete, post_delete, rows_changing, rows_changed):
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
