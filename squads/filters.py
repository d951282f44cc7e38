"""One FilterSet per model, shared by the HTML lists and the API."""

import django_filters
from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector
from django.db.models import F, Q

from squads.models import Api, Lifecycle, Person, Resource, Service, Squad, System, Tribe


def search_vector():
    """The full-text document of a service. Migration ``0002_service_search_index`` builds a GIN
    index on exactly this expression (PostgreSQL only): keep the two in step."""
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


class ServiceFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="filter_search", label="Search")
    search = django_filters.CharFilter(method="filter_search", label="Full-text search")
    owner = django_filters.CharFilter(field_name="owner__slug", label="Owner squad (slug)")
    squad = django_filters.CharFilter(field_name="owner__slug", label="Owner squad (slug)")
    tribe = django_filters.CharFilter(field_name="owner__tribe__slug", label="Tribe (slug)")
    system = django_filters.CharFilter(field_name="system__slug", label="System (slug)")
    lifecycle = django_filters.ChoiceFilter(choices=Lifecycle.choices)
    tier = django_filters.TypedChoiceFilter(choices=[(1, "1"), (2, "2"), (3, "3")], coerce=int)
    type = django_filters.CharFilter(field_name="type")
    tag = django_filters.CharFilter(field_name="tags__name", label="Tag")

    class Meta:
        model = Service
        fields = [
            "q",
            "search",
            "owner",
            "squad",
            "tribe",
            "system",
            "lifecycle",
            "tier",
            "type",
            "tag",
        ]

    def filter_search(self, qs, name, value):
        return search_services(qs, value)


class _TextSearch(django_filters.FilterSet):
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
    tribe = django_filters.CharFilter(field_name="tribe__slug")

    class Meta:
        model = Squad
        fields = ["tribe", "q"]


class TribeFilter(django_filters.FilterSet):
    class Meta:
        model = Tribe
        fields = ["kind"]


class PersonFilter(_TextSearch):
    text_field = "email"
    squad = django_filters.CharFilter(field_name="memberships__squad__slug")

    class Meta:
        model = Person
        fields = ["squad", "q"]


class SystemFilter(django_filters.FilterSet):
    owner = django_filters.CharFilter(field_name="owner__slug")
    domain = django_filters.CharFilter(field_name="domain__slug")

    class Meta:
        model = System
        fields = ["owner", "domain"]


class ApiFilter(django_filters.FilterSet):
    owner = django_filters.CharFilter(field_name="owner__slug")
    system = django_filters.CharFilter(field_name="system__slug")

    class Meta:
        model = Api
        fields = ["owner", "system", "type", "lifecycle"]


class ResourceFilter(django_filters.FilterSet):
    owner = django_filters.CharFilter(field_name="owner__slug")
    system = django_filters.CharFilter(field_name="system__slug")

    class Meta:
        model = Resource
        fields = ["owner", "system", "type"]
