import django_filters

from releases.models import Release, ReleaseStatus, StrategyOverride


class ReleaseFilter(django_filters.FilterSet):
    """Shared by the releases page and ``GET /api/v1/releases/``."""

    squad = django_filters.CharFilter(field_name="service__owner__slug")
    service = django_filters.CharFilter(field_name="service__slug")
    environment = django_filters.CharFilter(field_name="environment__name")
    status = django_filters.MultipleChoiceFilter(choices=ReleaseStatus.choices)
    version = django_filters.CharFilter(field_name="version")

    class Meta:
        model = Release
        fields = ["squad", "service", "environment", "status", "version"]


class StrategyFilter(django_filters.FilterSet):
    service = django_filters.CharFilter(field_name="service__slug", label="Service (slug)")
    environment = django_filters.CharFilter(field_name="environment__name", label="Environment")

    class Meta:
        model = StrategyOverride
        fields = ["service", "environment"]
