import django_filters

from pipelines.models import PipelineRun, RunStatus


class PipelineRunFilter(django_filters.FilterSet):
    """Shared by the runs page and ``GET /api/v1/runs/``."""

    service = django_filters.CharFilter(field_name="service__slug")
    squad = django_filters.CharFilter(field_name="service__owner__slug")
    status = django_filters.MultipleChoiceFilter(choices=RunStatus.choices)
    branch = django_filters.CharFilter(field_name="ref")
    ref = django_filters.CharFilter(field_name="ref")
    trigger = django_filters.ChoiceFilter(choices=PipelineRun.Trigger.choices)
    commit = django_filters.CharFilter(field_name="commit_sha", lookup_expr="startswith")
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")

    class Meta:
        model = PipelineRun
        fields = ["service", "squad", "status", "branch", "ref", "trigger", "commit", "since"]
