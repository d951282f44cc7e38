import django_filters

from portal.models import AuditEvent


class AuditEventFilter(django_filters.FilterSet):
    squad = django_filters.CharFilter(field_name="squad__slug")
    actor = django_filters.CharFilter(field_name="actor", lookup_expr="icontains")
    action = django_filters.CharFilter(field_name="action", lookup_expr="startswith")
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lte")

    class Meta:
        model = AuditEvent
        fields = ["door", "target_type", "squad", "actor", "action", "since", "until"]
