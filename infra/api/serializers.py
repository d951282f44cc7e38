from rest_framework import serializers

from infra import services
from infra.models import TerraformRun, Variable, Workspace
from portal.api.fields import RedactedURLField
from portal.errors import Invalid
from squads.models import Service, Squad


class RunRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = TerraformRun
        fields = ["id", "number", "kind", "status", "created_at"]
        read_only_fields = fields


# what the worker and the drift checks write: shown, never written through the API
WORKSPACE_READ_ONLY = [
    "lock",
    "locked_at",
    "state_serial",
    "state_lineage",
    "outputs",
    "last_applied_at",
    "drift_status",
    "drift_checked_at",
    "drift_summary",
    "created_at",
    "updated_at",
]


class WorkspaceSerializer(serializers.ModelSerializer):
    owner = serializers.SlugRelatedField(slug_field="slug", queryset=Squad.objects.all())
    services = serializers.SlugRelatedField(
        slug_field="slug", queryset=Service.objects.all(), many=True, required=False
    )
    lock = RunRefSerializer(source="lock_run", read_only=True, allow_null=True)
    url = serializers.CharField(source="get_absolute_url", read_only=True)
    slug = serializers.SlugField(max_length=100)
    repository_url = RedactedURLField(required=False, allow_blank=True, max_length=500)

    class Meta:
        model = Workspace
        fields = [
            "slug",
            "owner",
            "services",
            *services.WORKSPACE_FIELDS,  # what create/update_workspace accept: one list
            *WORKSPACE_READ_ONLY,
            "url",
        ]
        read_only_fields = WORKSPACE_READ_ONLY
        extra_kwargs = {"name": {"required": False}}

    def validate_files(self, value):
        try:
            services.validate_files(value)
        except Invalid as exc:
            raise serializers.ValidationError(exc.errors["files"]) from exc
        return value


class VariableSerializer(serializers.ModelSerializer):
    value = serializers.CharField(
        allow_blank=True,
        allow_null=True,
        trim_whitespace=False,
        help_text="null when the variable is sensitive (values are write-only then)",
    )

    class Meta:
        model = Variable
        fields = ["id", "key", "value", "category", "sensitive", "description", "updated_at"]
        read_only_fields = ["id", "updated_at"]

    def validate_value(self, value):
        if value is None:
            raise serializers.ValidationError("This field may not be null.")
        return value

    def to_representation(self, obj):
        data = super().to_representation(obj)
        if obj.sensitive:
            data["value"] = None  # write-only once sensitive
        return data


class TerraformRunSerializer(serializers.ModelSerializer):
    workspace = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    waiting_for = serializers.SerializerMethodField()
    url = serializers.CharField(source="get_absolute_url", read_only=True)

    class Meta:
        model = TerraformRun
        fields = [
            "id",
            "workspace",
            "number",
            "kind",
            "status",
            "message",
            "trigger",
            "created_by",
            "auto_apply",
            "has_changes",
            "summary",
            "diagnostics",
            "error",
            "lost",
            "discard_reason",
            "waiting_for",
            "cancel_requested",
            "log_size",
            "created_at",
            "plan_started_at",
            "planned_at",
            "confirmed_at",
            "confirmed_by",
            "apply_started_at",
            "finished_at",
            "url",
        ]
        read_only_fields = fields

    def get_waiting_for(self, obj) -> str:
        return services.waiting_for(obj)


class PlanRequestSerializer(serializers.Serializer):
    message = serializers.CharField(max_length=300, required=False, allow_blank=True)


class DiscardSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True)
