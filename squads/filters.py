"""One FilterSet per model, shared by the HTML lists and the API."""

import django_filters
from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector
from django.db.models import F, Q

from squads.models import (
    Api,
    Lifecycle,
    Person,
    Resource,
    Service,
    ServiceView,
    Squad,
    System,
    Tribe,
)

# Search ranks at most this many candidates from each way of matching (full text, tag, slug,
# name): the cost of a search, and of counting its results, stays bounded however many services
# match a common word (the count is exact below these caps; see ``ServiceViewSet``).
SEARCH_CANDIDATES = 1000
# the substring match (trigram indexes) only when the words found fewer than this
SUBSTRING_BELOW = 50
# The candidates, as one subquery of the page's query (and of its count): the words (the stored
# vector's GIN index) or an exact tag, and, when those find fewer than SUBSTRING_BELOW (a
# one-time filter: PostgreSQL skips the scans otherwise), a substring of slug or name (trigram
# indexes, one per column: an OR of the two is planned as a scan of every row).
CANDIDATES_SQL = f"""
WITH found AS (
  (SELECT service_id FROM squads_serviceview
    WHERE document @@ websearch_to_tsquery('english'::regconfig, %s) LIMIT {SEARCH_CANDIDATES})
  UNION (SELECT st.service_id FROM squads_service_tags st JOIN squads_tag t ON t.id = st.tag_id
    WHERE t.name = %s LIMIT {SEARCH_CANDIDATES}))
SELECT service_id FROM found
UNION SELECT service_id FROM (
  (SELECT service_id FROM squads_serviceview WHERE UPPER(slug::text) LIKE UPPER(%s)
    LIMIT {SEARCH_CANDIDATES})
  UNION (SELECT service_id FROM squads_serviceview WHERE UPPER(name::text) LIKE UPPER(%s)
    LIMIT {SEARCH_CANDIDATES})
) sub WHERE (SELECT COUNT(*) FROM found) < {SUBSTRING_BELOW}
"""
# (the bounds are constants of the text, not parameters: a prepared statement's generic plan
# then knows them, and reads the trigram indexes; with ``LIMIT $n`` it scanned every row)


def _candidates(value):
    """``service_id`` is a candidate of a search for ``value`` (``CANDIDATES_SQL``), as a
    condition: ``= ANY(ARRAY(...))`` is computed once and read through the primary key (an
    ``IN (subquery)`` was planned as a hash join over every row)."""
    from django.db.models import BooleanField
    from django.db.models.expressions import RawSQL

    return RawSQL(
        f"squads_serviceview.service_id = ANY(ARRAY({CANDIDATES_SQL}))",
        candidate_params(value),
        output_field=BooleanField(),
    )


def search_vector():
    """The full-text document of a service, computed per row: ``search_services`` (over
    ``Service``) is reached only by an update or delete sent with ``?search=``, one row by its
    slug; every list and search runs over the read form's stored, indexed vector
    (``search_views``). Migration 0011 dropped the GIN index 0002 built on this expression."""
    return (
        SearchVector("name", weight="A", config="english")
        + SearchVector("slug", weight="A", config="simple")
        + SearchVector("description", weight="B", config="english")
    )


def search_services(qs, value):
    value = (value or "").strip()
    if not value:
        return qs
    plain = Q(slug__icontains=value) | Q(name__icontains=value)
    tagged = Service.tags.through.objects.filter(tag__name=value.lower()).values("service_id")
    if settings.IS_POSTGRES:
        vector = search_vector()
        query = SearchQuery(value, search_type="websearch", config="english")
        # The union of three id sets, each found cheaply (the full-text one through the GIN
        # index), instead of one OR over a join: no DISTINCT, no full-text scan of every row.
        matching = (
            Service.objects.annotate(document=vector)
            .filter(document=query)
            .order_by()
            .values("pk")
            .union(Service.objects.filter(plain).order_by().values("pk"), tagged)
        )
        return (
            qs.filter(pk__in=matching)
            .annotate(rank=SearchRank(vector, query))
            .order_by(F("rank").desc(nulls_last=True), "name")
        )
    return qs.filter(plain | Q(description__icontains=value) | Q(pk__in=tagged))


def candidate_params(value):
    """The parameters of ``CANDIDATES_SQL`` for a search of ``value``, in order."""
    like = _like(value)
    return [value, value.lower(), like, like]


def _like(value):
    return "%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def search_views(qs, value):
    """Search over the stitched read form: on PostgreSQL the candidates of ``_candidates``
    (a bounded set, a subquery of the page's one query), ranked with
    ``ts_rank_cd`` over the stored vector, then name; elsewhere substrings."""
    value = (value or "").strip()
    if not value:
        return qs
    tagged = Service.tags.through.objects.filter(tag__name=value.lower()).values("service_id")
    if not settings.IS_POSTGRES:
        plain = Q(slug__icontains=value) | Q(name__icontains=value)
        return qs.filter(plain | Q(service__description__icontains=value) | Q(pk__in=tagged))
    from django.contrib.postgres.search import SearchQuery, SearchRank

    query = SearchQuery(value, search_type="websearch", config="english")
    return (
        qs.filter(_candidates(value))
        .annotate(rank=SearchRank(F("document"), query, cover_density=True))
        .order_by(F("rank").desc(nulls_last=True), "name")
    )


class _ServiceParams(django_filters.FilterSet):
    """The service list's parameters held by the same column everywhere; the subclasses add
    owner, tribe, system and tag over the columns of their model."""

    q = django_filters.CharFilter(method="filter_search", label="Search")
    search = django_filters.CharFilter(method="filter_search", label="Full-text search")
    lifecycle = django_filters.ChoiceFilter(choices=Lifecycle.choices)
    tier = django_filters.TypedChoiceFilter(choices=[(1, "1"), (2, "2"), (3, "3")], coerce=int)
    type = django_filters.CharFilter(field_name="type")


PARAMS = ["q", "search", "owner", "squad", "tribe", "system", "lifecycle", "tier", "type", "tag"]


def _service_filterset(name, model, search, *, owner, tribe, system, tag, doc=""):
    """A FilterSet of the service list's parameters over ``model``'s columns."""

    def column(field_name, label):
        return django_filters.CharFilter(field_name=field_name, label=label)

    meta = type("Meta", (), {"model": model, "fields": PARAMS})
    attrs = {
        "__doc__": doc,
        "__module__": __name__,
        "owner": column(owner, "Owner squad (slug)"),
        "squad": column(owner, "Owner squad (slug)"),
        "tribe": column(tribe, "Tribe (slug)"),
        "system": column(system, "System (slug)"),
        "tag": column(tag, "Tag"),
        "Meta": meta,
        "filter_search": lambda self, qs, name, value: search(qs, value),
    }
    return type(name, (_ServiceParams,), attrs)


ServiceFilter = _service_filterset(
    "ServiceFilter",
    Service,
    search_services,
    owner="owner__slug",
    tribe="owner__tribe__slug",
    system="system__slug",
    tag="tags__name",
)
ServiceViewFilter = _service_filterset(
    "ServiceViewFilter",
    ServiceView,
    search_views,
    owner="owner_slug",
    tribe="tribe_slug",
    system="system_slug",
    tag="service__tags__name",
    doc="``ServiceFilter``'s parameters over the stitched read form (indexed columns).",
)


class BySlug(django_filters.FilterSet):
    """A FilterSet whose relations named in ``Meta.fields`` filter by the related row's slug
    (``?owner=payments``), as everywhere in the catalog API."""

    @classmethod
    def filter_for_field(cls, field, field_name, lookup_expr=None):
        if field.is_relation:
            return django_filters.CharFilter(field_name=f"{field_name}__slug")
        return super().filter_for_field(field, field_name, lookup_expr)


class _TextSearch(BySlug):
    """``q``: a case-insensitive substring of name, slug or the ``text_field``."""

    text_field = ""
    q = django_filters.CharFilter(method="filter_q")

    def filter_q(self, qs, name, value):
        return qs.filter(
            Q(name__icontains=value)
            | Q(slug__icontains=value)
            | Q(**{f"{self.text_field}__icontains": value})
        )


class SquadFilter(_TextSearch):
    text_field = "mission"

    class Meta:
        model = Squad
        fields = ["tribe", "q"]


class PersonFilter(_TextSearch):
    text_field = "email"
    squad = django_filters.CharFilter(field_name="memberships__squad__slug")

    class Meta:
        model = Person
        fields = ["squad", "q"]


def _by_slug(model, *fields):
    """The catalog's plain FilterSet of ``model``: exact ``fields``, relations by slug."""
    meta = type("Meta", (), {"model": model, "fields": list(fields)})
    return type(f"{model.__name__}Filter", (BySlug,), {"Meta": meta, "__module__": __name__})


TribeFilter = _by_slug(Tribe, "kind")
SystemFilter = _by_slug(System, "owner", "domain")
ApiFilter = _by_slug(Api, "owner", "system", "type", "lifecycle")
ResourceFilter = _by_slug(Resource, "owner", "system", "type")
