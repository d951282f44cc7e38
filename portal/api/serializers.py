from rest_framework import serializers

from portal.models import SCOPE_NAMES, ApiToken, AuditEvent
from squads.models import Squad


class ApiTokenSerializer(serializers.ModelSerializer):
    squad = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    created_by = serializers.StringRelatedField()
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
    squad = serializers.SlugRelatedField(slug_field="slug", queryset=Squad.objects.all())
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=SCOPE_NAMES), allow_empty=True, default=list
    )
    expires_in_days = serializers.IntegerField(min_value=1, max_value=3650, required=False)


class AuditEventSerializer(serializers.ModelSerializer):
    squad = serializers.SlugRelatedField(slug_field="slug", read_only=True)

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
        squads = list(Squad.objects.filter(pk__in=actor.squad_ids()).values_list("slug", flat=True))
        return {
            "username": actor.label,
            "kind": "token" if actor.token else "person",
            "is_admin": actor.is_admin,
            "squads": sorted(squads),
            "scopes": list(actor.token.scopes) if actor.token else [],
        }
