from django.db import connection, transaction
from django.db.models import Count, Prefetch
from django.http import Http404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter
from rest_framework.response import Response

from portal.actors import Actor
from squads import services
from squads.api.serializers import (
    ApiSerializer,
    DependencySerializer,
    PersonSerializer,
    ResourceSerializer,
    ScorecardSerializer,
    ServiceListSerializer,
    ServiceSerializer,
    SquadSerializer,
    SystemSerializer,
    TribeSerializer,
)
from squads.filters import (
    ApiFilter,
    PersonFilter,
    ResourceFilter,
    ServiceFilter,
    ServiceViewFilter,
    SquadFilter,
    SystemFilter,
    TribeFilter,
)
from squads.models import (
    Api,
    Dependency,
    Membership,
    Person,
    Resource,
    Service,
    ServiceView,
    Squad,
    System,
    Tag,
    Tribe,
)

# facet name -> column of the read form
FACETS = {
    "owner": "owner_slug",
    "tribe": "tribe_slug",
    "system": "system_slug",
    "lifecycle": "lifecycle",
    "tier": "tier",
    "type": "type",
    "level": "level",
}


def facet_counts(qs, cols):
    """The total and every facet's counts of ``qs`` in one scan (``GROUPING SETS``)."""
    inner, params = qs.values(*cols).query.sql_with_params()
    sets = ", ".join(f"({c})" for c in cols)
    flags = ", ".join(f"GROUPING({c})" for c in cols)
    sql = (
        f"SELECT {', '.join(cols)}, {flags}, COUNT(*) FROM ({inner}) f "
        f"GROUP BY GROUPING SETS ({sets}, ())"
    )
    counts = {c: [] for c in cols}
    total = 0
    with connection.cursor() as cur:
        cur.execute(sql, params)
        for row in cur.fetchall():
            values, grouped, n = row[: len(cols)], row[len(cols) : -1], row[-1]
            if all(grouped):
                total = n
                continue
            i = grouped.index(0)
            counts[cols[i]].append((values[i], n))
    for col in cols:
        counts[col].sort(key=lambda r: (-r[1], r[0]))
    return total, counts


def stitched(request, view):
    """The read form filtered (the service list's parameters) and ordered: one indexed query."""
    filterset = ServiceViewFilter(
        request.query_params, queryset=ServiceView.objects.all(), request=request
    )
    if not filterset.is_valid():
        raise ValidationError(filterset.errors)
    return RelevanceOrdering().filter_queryset(request, filterset.qs, view)


def stored_document(slug, field):
    found = ServiceView.objects.filter(slug=slug).values_list(field, flat=True).first()
    if found is None:
        raise Http404("No service matches the given query.")
    return found


class TribeViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Tribe.objects.select_related("parent").prefetch_related("squads")
    serializer_class = TribeSerializer
    lookup_field = "slug"
    lookup_value_regex = r"[-a-zA-Z0-9_.]+"  # Backstage names may contain dots
    filterset_class = TribeFilter
    ordering_fields = ["name", "slug"]


class SquadViewSet(mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Squad.objects.select_related("tribe").prefetch_related(
        Prefetch(
            "memberships",
            queryset=Membership.objects.select_related("person").order_by("role", "person__name"),
        ),
        Prefetch("services", queryset=Service.objects.only("slug", "owner_id").order_by("slug")),
    )
    serializer_class = SquadSerializer
    lookup_field = "slug"
    lookup_value_regex = r"[-a-zA-Z0-9_.]+"  # Backstage names may contain dots
    filterset_class = SquadFilter
    ordering_fields = ["name", "slug"]

    def perform_update(self, serializer):
        serializer.instance = services.update_squad(
            serializer.instance,
            actor=Actor.from_request(self.request, door="api"),
            **serializer.validated_data,
        )


class PersonViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Person.objects.prefetch_related(
        Prefetch("memberships", queryset=Membership.objects.select_related("squad"))
    )
    serializer_class = PersonSerializer
    lookup_field = "slug"
    lookup_value_regex = r"[-a-zA-Z0-9_.]+"  # Backstage names may contain dots
    filterset_class = PersonFilter
    ordering_fields = ["name", "slug"]


class RelevanceOrdering(OrderingFilter):
    """With a full-text search (``search=`` or ``q=``) and no ``ordering=``, results keep the
    search's order (relevance, then name) instead of the view's default ordering."""

    def get_default_ordering(self, view):
        params = view.request.query_params
        if (params.get("search") or params.get("q") or "").strip():
            return None
        return super().get_default_ordering(view)


class ServiceViewSet(viewsets.ModelViewSet):
    """Services (Backstage Components). Filters: owner, tribe, system, lifecycle, tier, type,
    tag; `search=` is full-text (PostgreSQL) over name, slug, description and tags (and a
    substring of slug or name when the words find few), ordered by relevance (`ts_rank_cd`)
    unless `ordering=` is given.

    A search ranks a bounded candidate set: at most 1,000 services per way of matching (words,
    exact tag, slug substring, name substring). `count` (and the facets' counts) is exact while
    a search matches fewer than that; a search for a word in more than 1,000 services counts,
    and pages through, its first 1,000 matches by words (refine the search or add a filter).
    Without `search=` the count is exact."""

    lookup_field = "slug"
    lookup_value_regex = r"[-a-zA-Z0-9_.]+"  # Backstage names may contain dots
    filterset_class = ServiceFilter
    filter_backends = [DjangoFilterBackend, RelevanceOrdering]
    ordering_fields = ["name", "slug", "tier", "lifecycle", "updated_at"]
    ordering = ["name"]

    def get_queryset(self):
        qs = Service.objects.select_related("owner", "system").prefetch_related(
            Prefetch("tags", queryset=Tag.objects.only("name"))
        )
        if self.action != "list":
            qs = qs.prefetch_related(
                Prefetch(
                    "dependencies",
                    queryset=Dependency.objects.select_related("target_service", "target_resource"),
                ),
                Prefetch("dependents", queryset=Dependency.objects.select_related("source")),
                Prefetch("provides_apis", queryset=Api.objects.only("slug")),
                Prefetch("consumes_apis", queryset=Api.objects.only("slug")),
            )
        return qs

    def get_serializer_class(self):
        return ServiceListSerializer if self.action == "list" else ServiceSerializer

    def list(self, request, *args, **kwargs):
        """A page of services: the rows stitched at write time (``squads.stitch``)."""
        page = self.paginate_queryset(stitched(request, self).values_list("row", flat=True))
        return self.get_paginated_response(list(page))

    def retrieve(self, request, *args, slug=None, **kwargs):
        """The service's detail document, stitched at write time."""
        return Response(stored_document(slug, "detail"))

    @extend_schema(
        parameters=[OpenApiParameter("facet", str, many=True, enum=sorted(FACETS))],
        responses={200: dict},
    )
    @action(detail=False, methods=["get"])
    def facets(self, request):
        """Counts of the services matching the list's filters (and search), per value of each
        ``facet`` asked for (owner, tribe, system, lifecycle, tier, type, level)."""
        wanted = request.query_params.getlist("facet") or ["lifecycle", "type", "tier"]
        unknown = sorted(set(wanted) - set(FACETS))
        if unknown:
            raise ValidationError({"facet": [f"Unknown facet(s): {', '.join(unknown)}."]})
        wanted = list(dict.fromkeys(wanted))
        qs = stitched(request, self).order_by()
        if connection.vendor == "postgresql":
            total, counts = facet_counts(qs, [FACETS[n] for n in wanted])
        else:
            total, counts = qs.count(), {}
            for col in (FACETS[n] for n in wanted):
                rows = qs.values_list(col).annotate(n=Count("pk"))
                counts[col] = sorted(rows, key=lambda r: (-r[1], r[0]))
        out = {name: [{"value": v, "count": c} for v, c in counts[FACETS[name]]] for name in wanted}
        return Response({"count": total, "facets": out})

    def _fields(self, data):
        tags = data.pop("tags", None)
        provides = data.pop("provides_apis", None)
        consumes = data.pop("consumes_apis", None)
        return tags, provides, consumes, data

    def create(self, request, *args, **kwargs):
        ser = ServiceSerializer(data=request.data, context=self.get_serializer_context())
        ser.is_valid(raise_exception=True)
        tags, provides, consumes, data = self._fields(dict(ser.validated_data))
        slug = data.pop("slug")
        service = services.create_service(
            data.pop("owner", None),
            actor=Actor.from_request(request, door="api"),
            slug=slug,
            tags=tags or [],
            provides_apis=provides or [],
            consumes_apis=consumes or [],
            **data,
        )
        return Response(stored_document(service.slug, "detail"), status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        partial = kwargs.pop("partial", False)
        instance = self.get_object()
        ser = ServiceSerializer(
            instance, data=request.data, partial=partial, context=self.get_serializer_context()
        )
        ser.is_valid(raise_exception=True)
        tags, provides, consumes, data = self._fields(dict(ser.validated_data))
        data.pop("slug", None)
        services.update_service(
            instance,
            actor=Actor.from_request(request, door="api"),
            tags=tags,
            provides_apis=provides,
            consumes_apis=consumes,
            **data,
        )
        return Response(stored_document(instance.slug, "detail"))

    def destroy(self, request, *args, **kwargs):
        services.delete_service(self.get_object(), actor=Actor.from_request(request, door="api"))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=ScorecardSerializer)
    @action(detail=True, methods=["get"])
    def scorecard(self, request, slug=None):
        row = ServiceView.objects.filter(slug=slug).values("owner_slug", "scorecard").first()
        if row is None:
            raise Http404("No service matches the given query.")
        return Response({"service": slug, "owner": row["owner_slug"] or None, **row["scorecard"]})


class ScorecardViewSet(viewsets.GenericViewSet):
    """Scorecards of many services at once (same filters as the service list)."""

    queryset = Service.objects.select_related("owner").order_by("name")
    filterset_class = ServiceFilter
    serializer_class = ScorecardSerializer
    ordering_fields = ["name", "slug", "tier", "lifecycle", "updated_at"]
    ordering = ["name"]

    @extend_schema(responses=ScorecardSerializer(many=True))
    def list(self, request):
        rows = stitched(request, self).values_list("slug", "owner_slug", "scorecard")
        page = self.paginate_queryset(rows)
        data = [{"service": s, "owner": o or None, **card} for s, o, card in page]
        return self.get_paginated_response(data)


class DependencyViewSet(
    mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet
):
    queryset = Dependency.objects.select_related(
        "source", "source__owner", "target_service", "target_resource"
    ).order_by("id")
    serializer_class = DependencySerializer
    filterset_fields = {"source__slug": ["exact"], "target_service__slug": ["exact"]}

    @extend_schema(
        parameters=[
            OpenApiParameter("source__slug", str),
            OpenApiParameter("target_service__slug", str),
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def create(self, request, *args, **kwargs):
        ser = self.get_serializer(data=request.data)
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        with transaction.atomic():
            dep = services.add_dependency(
                d["source"],
                actor=Actor.from_request(request, door="api"),
                target_service=d.get("target_service"),
                target_resource=d.get("target_resource"),
            )
        return Response(DependencySerializer(dep).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, *args, **kwargs):
        services.remove_dependency(self.get_object(), actor=Actor.from_request(request, door="api"))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SystemViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = System.objects.select_related("owner", "domain").prefetch_related("services")
    serializer_class = SystemSerializer
    lookup_field = "slug"
    lookup_value_regex = r"[-a-zA-Z0-9_.]+"  # Backstage names may contain dots
    filterset_class = SystemFilter


class ApiViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Api.objects.select_related("owner", "system").prefetch_related(
        "providers", "consumers"
    )
    serializer_class = ApiSerializer
    lookup_field = "slug"
    lookup_value_regex = r"[-a-zA-Z0-9_.]+"  # Backstage names may contain dots
    filterset_class = ApiFilter


class ResourceViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Resource.objects.select_related("owner", "system")
    serializer_class = ResourceSerializer
    lookup_field = "slug"
    lookup_value_regex = r"[-a-zA-Z0-9_.]+"  # Backstage names may contain dots
    filterset_class = ResourceFilter
