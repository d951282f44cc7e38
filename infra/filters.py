"""One FilterSet per model, shared by the HTML lists and the API."""

import django_filters
from django.db.models import Q

from infra.models import DriftStatus, RunStatus, TerraformRun, Workspace


class WorkspaceFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="filter_q", label="Search")
    owner = django_filters.CharFilter(field_name="owner__slug", label="Owner squad (slug)")
    squad = django_filters.CharFilter(field_name="owner__slug", label="Owner squad (slug)")
    service = django_filters.CharFilter(field_name="services__slug", label="Linked service (slug)")
    drift_status = django_filters.ChoiceFilter(choices=DriftStatus.choices)
    locked = django_filters.BooleanFilter(
        field_name="lock_run", lookup_expr="isnull", exclude=True, label="Locked"
    )

    class Meta:
        model = Workspace
        fields = ["q", "owner", "squad", "service", "drift_status", "locked", "source"]

    def filter_q(self, qs, name, value):
        value = (value or "").strip()
        if not value:
            return qs
        return qs.filter(
            Q(slug__icontains=value) | Q(name__icontains=value) | Q(description__icontains=value)
        )


class TerraformRunFilter(django_filters.FilterSet):
    workspace = django_filters.CharFilter(field_name="workspace__slug")
    squad = django_filters.CharFilter(field_name="workspace__owner__slug")
    status = django_filters.MultipleChoiceFilter(choices=RunStatus.choices)
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")

    class Meta:
        model = TerraformRun
        fields = ["workspace", "squad", "status", "kind", "since"]
