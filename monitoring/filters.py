import django_filters

from monitoring.models import Alert, AlertRule, NotificationChannel


class AlertFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=Alert.State.choices)
    squad = django_filters.CharFilter(field_name="service__owner__slug")
    service = django_filters.CharFilter(field_name="service__slug")
    severity = django_filters.CharFilter()
    since = django_filters.IsoDateTimeFilter(field_name="started_at", lookup_expr="gte")

    class Meta:
        model = Alert
        fields = ["state", "squad", "service", "severity", "since"]


class AlertRuleFilter(django_filters.FilterSet):
    service = django_filters.CharFilter(field_name="service__slug")
    squad = django_filters.CharFilter(field_name="service__owner__slug")

    class Meta:
        model = AlertRule
        fields = ["service", "squad", "severity", "enabled", "signal"]


class NotificationChannelFilter(django_filters.FilterSet):
    squad = django_filters.CharFilter(field_name="squad__slug")

    class Meta:
        model = NotificationChannel
        fields = ["squad", "kind", "enabled"]
