from django.contrib import admin

from monitoring.models import (
    Alert,
    AlertEvent,
    AlertRule,
    Delivery,
    NotificationChannel,
)
from portal.urlsecrets import redact_secret_url


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ["name", "service", "signal", "comparison", "threshold", "severity", "enabled"]
    list_filter = ["severity", "enabled", "signal"]
    search_fields = ["name", "service__slug"]


class AlertEventInline(admin.TabularInline):
    model = AlertEvent
    extra = 0
    readonly_fields = ["at", "from_state", "to_state", "value"]


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["rule", "service", "state", "severity", "started_at", "fired_at", "resolved_at"]
    list_filter = ["state", "severity"]
    inlines = [AlertEventInline]


@admin.register(NotificationChannel)
class NotificationChannelAdmin(admin.ModelAdmin):
    list_display = ["name", "squad", "kind", "shown_url", "min_severity", "enabled"]
    list_filter = ["kind", "enabled"]

    @admin.display(description="URL")
    def shown_url(self, obj):
        return redact_secret_url(obj.url)  # a Slack URL is a credential


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "alert",
        "channel",
        "event",
        "status",
        "attempts",
        "response_code",
        "created_at",
    ]
    list_filter = ["outbound__status", "event"]
    list_select_related = ["alert__rule", "channel", "outbound"]
