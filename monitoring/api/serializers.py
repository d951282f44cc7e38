from rest_framework import serializers

from monitoring.models import (
    SIGNALS,
    TRACKS,
    Alert,
    AlertEvent,
    AlertRule,
    NotificationChannel,
)
from monitoring.services import RULE_FIELDS
from portal.api.fields import RedactedURLField
from squads.models import Service, Squad


class AlertRuleSerializer(serializers.ModelSerializer):
    service = serializers.SlugRelatedField(slug_field="slug", queryset=Service.objects.all())
    signal = serializers.ChoiceField(
        choices=[("", "")] + [(s, s) for s in SIGNALS], required=False, allow_blank=True
    )
    track = serializers.ChoiceField(choices=[(t, t) for t in TRACKS], required=False)
    expression = serializers.CharField(read_only=True)

    class Meta:
        model = AlertRule
        fields = [
            "id",
            "service",
            *RULE_FIELDS,
            "expression",
            "created_at",
            "updated_at",
            "last_evaluated_at",
            "last_value",
            "last_error",
        ]
        read_only_fields = [
            "created_at",
            "updated_at",
            "last_evaluated_at",
            "last_value",
            "last_error",
        ]

    def validate_window_seconds(self, value):
        if not 5 <= value <= 86400:
            raise serializers.ValidationError("window_seconds must be between 5 and 86400.")
        return value

    def validate(self, attrs):
        # signal or query, and a query the backend can evaluate: the service checks
        if (
            self.instance is not None
            and "service" in attrs
            and attrs["service"] != self.instance.service
        ):
            raise serializers.ValidationError({"service": "A rule cannot move to another service."})
        return attrs


class AlertEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AlertEvent
        fields = ["at", "from_state", "to_state", "value"]


class AlertSerializer(serializers.ModelSerializer):
    service = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    rule = serializers.PrimaryKeyRelatedField(read_only=True)
    rule_name = serializers.CharField(source="rule.name", read_only=True)
    events = AlertEventSerializer(many=True, read_only=True)

    class Meta:
        model = Alert
        fields = [
            "id",
            "rule",
            "rule_name",
            "service",
            "state",
            "severity",
            "summary",
            "started_at",
            "fired_at",
            "resolved_at",
            "value",
            "last_value",
            "events",
        ]


class NotificationChannelSerializer(serializers.ModelSerializer):
    squad = serializers.SlugRelatedField(slug_field="slug", queryset=Squad.objects.all())
    secret = serializers.CharField(write_only=True, required=False, allow_blank=True)
    url = RedactedURLField(secret=True, url=True, max_length=500)  # a Slack URL: a credential

    class Meta:
        model = NotificationChannel
        fields = [
            "id",
            "squad",
            "name",
            "kind",
            "url",
            "secret",
            "min_severity",
            "enabled",
            "created_at",
        ]
        read_only_fields = ["created_at"]
