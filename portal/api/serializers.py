from rest_framework import serializers

from portal.api.fields import RedactedURLField
from portal.catalog import squad_model
from portal.models import SCOPE_NAMES, ApiToken, AuditEvent, EventDelivery, EventSubscription
from portal.services import SUBSCRIPTION_FIELDS
from portal.urlsecrets import redact_credentials, redact_secret_url


class ApiTokenSerializer(serializers.ModelSerializer):
    squad: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="slug", read_only=True, allow_null=True
    )
    created_by = serializers.CharField(
        source="created_by.username", read_only=True, allow_null=True, default=None
    )
    is_active = serializers.BooleanField(read_only=True)

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "squad",
            "scopes",
            "key_prefix",
            "created_by",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
            "is_active",
        ]
        read_only_fields = fields


class ApiTokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    squad = serializers.SlugRelatedField(slug_field="slug", queryset=squad_model().objects.all())
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=SCOPE_NAMES), allow_empty=True, default=list
    )
    expires_in_days = serializers.IntegerField(min_value=1, max_value=3650, required=False)


class AuditEventSerializer(serializers.ModelSerializer):
    squad: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="slug", read_only=True, allow_null=True
    )

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "created_at",
            "actor",
            "door",
            "action",
            "target_type",
            "target_id",
            "target_repr",
            "squad",
            "ip",
            "data",
        ]
        read_only_fields = fields


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    kind = serializers.ChoiceField(choices=["person", "token"])
    is_admin = serializers.BooleanField()
    squads = serializers.ListField(child=serializers.CharField())
    scopes = serializers.ListField(child=serializers.CharField())

    @staticmethod
    def for_actor(actor):
        squads = list(
            squad_model().objects.filter(pk__in=actor.squad_ids()).values_list("slug", flat=True)
        )
        return {
            "username": actor.label,
            "kind": "token" if actor.token else "person",
            "is_admin": actor.is_admin,
            "squads": sorted(squads),
            "scopes": list(actor.token.scopes) if actor.token else [],
        }


EVENT_PATTERN_HELP = (
    "Registered event types (GET /api/v1/event-types/), their families (release.*, alert.*, "
    "...) or '*'."
)


class EventSubscriptionSerializer(serializers.ModelSerializer):
    squad = serializers.SlugRelatedField(slug_field="slug", queryset=squad_model().objects.all())
    secret = serializers.CharField(write_only=True, min_length=8, max_length=200)
    url = RedactedURLField(max_length=500)  # user:token@ shown as ****
    event_types = serializers.ListField(
        child=serializers.CharField(max_length=64), help_text=EVENT_PATTERN_HELP
    )

    class Meta:
        model = EventSubscription
        fields = ["id", *SUBSCRIPTION_FIELDS, "created_at"]
        read_only_fields = ["id", "created_at"]


class EventTypeSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()


class DeliveryAttemptSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    status_code = serializers.IntegerField(allow_null=True)
    error = serializers.CharField()
    duration_ms = serializers.IntegerField()


class EventDeliverySerializer(serializers.ModelSerializer):
    subscription: serializers.PrimaryKeyRelatedField = serializers.PrimaryKeyRelatedField(
        read_only=True
    )
    attempt_log = DeliveryAttemptSerializer(many=True, read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = EventDelivery
        fields = [
            "id",
            "delivery_id",
            "kind",
            "subscription",
            "url",
            "event_type",
            "payload",
            "status",
            "attempts",
            "last_status_code",
            "last_error",
            "created_at",
            "last_attempt_at",
            "next_attempt_at",
            "delivered_at",
            "attempt_log",
        ]
        read_only_fields = fields

    def get_url(self, obj) -> str:
        """An alert channel's URL is a credential (Slack): scheme and host only."""
        if obj.kind == "alert":
            return redact_secret_url(obj.url)
        return redact_credentials(obj.url)
