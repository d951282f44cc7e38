from rest_framework import serializers

from portal.api.fields import RedactedURLField
from squads.fields import LIST_FIELDS
from squads.models import (
    Api,
    Dependency,
    Lifecycle,
    Membership,
    Person,
    Resource,
    Service,
    Squad,
    System,
    Tribe,
)
from squads.scorecards import evaluate_one
from squads.services import SERVICE_FIELDS

LIFECYCLE_LABEL_HELP = (
    "the lifecycle as the Backstage descriptor wrote it (any string, e.g. 'decommissioned'), "
    "else the label of `lifecycle`"
)


class LinkSerializer(serializers.Serializer):
    """One catalog link; http(s) URLs only (they are rendered as hrefs)."""

    url = serializers.URLField(max_length=500)
    title = serializers.CharField(required=False, allow_blank=True, max_length=200)
    icon = serializers.CharField(required=False, allow_blank=True, max_length=100)
    type = serializers.CharField(required=False, allow_blank=True, max_length=100)

    def validate(self, attrs):
        if not attrs.get("url"):  # partial updates (PATCH) relax nested required fields
            raise serializers.ValidationError({"url": ["This field is required."]})
        return attrs

    def to_representation(self, instance):
        # stored links come from imports too: show them as they are, keys we know only
        if not isinstance(instance, dict):
            return {"url": str(instance)}
        out = {k: str(v) for k, v in instance.items() if k in self.fields and v is not None}
        out.setdefault("url", "")
        return out


# A relation in ``Meta.fields`` that the serializer does not declare is shown as its target's
# slug, read-only (``"owner": "payments"``, ``"services": ["search-api"]``). (A comment, not a
# docstring: the OpenAPI schema would give it as every subclass's description.)
class BySlug(serializers.ModelSerializer):
    def build_relational_field(self, field_name, relation_info):
        kwargs: dict = {"slug_field": "slug", "read_only": True}
        if relation_info.to_many:
            kwargs["many"] = True
        elif relation_info.model_field is not None and relation_info.model_field.null:
            kwargs["allow_null"] = True
        return serializers.SlugRelatedField, kwargs


class TribeSerializer(BySlug):
    class Meta:
        model = Tribe
        fields = ["slug", "name", "description", "kind", "parent", "email", "links", "squads"]


class MemberSerializer(serializers.ModelSerializer):
    person = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    name = serializers.CharField(source="person.name", read_only=True)
    email = serializers.CharField(source="person.email", read_only=True)

    class Meta:
        model = Membership
        fields = ["person", "name", "email", "role", "source"]
        read_only_fields = ["source"]  # directory memberships follow the directory (issue 15)


class SquadSerializer(BySlug):
    members = MemberSerializer(source="memberships", many=True, read_only=True)
    links = LinkSerializer(many=True, required=False)

    class Meta:
        model = Squad
        fields = [
            "slug",
            "name",
            "mission",
            "tribe",
            "chat_channel",
            "oncall_contact",
            "email",
            "links",
            "members",
            "services",
        ]
        read_only_fields = ["slug", "tribe", "members", "services"]


class PersonSerializer(serializers.ModelSerializer):
    squads = serializers.SerializerMethodField()

    class Meta:
        model = Person
        fields = ["slug", "name", "email", "squads"]

    def get_squads(self, obj) -> list[dict]:
        return [
            {"squad": m.squad.slug, "role": m.role, "source": m.source}
            for m in obj.memberships.all()
        ]


class DependencyRefSerializer(serializers.ModelSerializer):
    kind = serializers.SerializerMethodField()
    slug = serializers.SerializerMethodField()

    class Meta:
        model = Dependency
        fields = ["id", "kind", "slug"]

    def get_kind(self, obj) -> str:
        return "service" if obj.target_service_id else "resource"

    def get_slug(self, obj) -> str:
        return obj.target_service.slug if obj.target_service_id else obj.target_resource.slug


class TagListField(serializers.ListField):
    child = serializers.SlugField(max_length=63)

    def to_representation(self, data):
        return [t.name for t in data.all()]


class ServiceSerializer(serializers.ModelSerializer):
    owner = serializers.SlugRelatedField(
        slug_field="slug", queryset=Squad.objects.all(), allow_null=True, required=False
    )
    system = serializers.SlugRelatedField(
        slug_field="slug", queryset=System.objects.all(), allow_null=True, required=False
    )
    tags = TagListField(required=False)
    links = LinkSerializer(many=True, required=False)
    annotations = serializers.DictField(
        child=serializers.CharField(allow_blank=True, max_length=2000), required=False
    )
    lifecycle = serializers.ChoiceField(choices=Lifecycle.choices, required=False)
    tier = serializers.ChoiceField(choices=[1, 2, 3], required=False)
    dependencies = DependencyRefSerializer(many=True, read_only=True)
    dependents = serializers.SerializerMethodField()
    provides_apis = serializers.SlugRelatedField(
        slug_field="slug", many=True, queryset=Api.objects.all(), required=False
    )
    consumes_apis = serializers.SlugRelatedField(
        slug_field="slug", many=True, queryset=Api.objects.all(), required=False
    )
    webhook_secret = serializers.CharField(
        write_only=True, required=False, allow_blank=True, max_length=200
    )
    has_webhook_secret = serializers.SerializerMethodField()
    metrics_urls = serializers.ListField(child=serializers.URLField(), required=False)
    scorecard = serializers.SerializerMethodField()
    url = serializers.CharField(source="get_absolute_url", read_only=True)
    lifecycle_label = serializers.CharField(read_only=True, help_text=LIFECYCLE_LABEL_HELP)

    repository_url = RedactedURLField(required=False, allow_blank=True, max_length=500)

    class Meta:
        model = Service
        fields = [
            "slug",
            *SERVICE_FIELDS,
            "lifecycle_label",
            "tags",
            "provides_apis",
            "consumes_apis",
            "dependencies",
            "dependents",
            "has_webhook_secret",
            "scorecard",
            "url",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    def get_dependents(self, obj) -> list[str]:
        return [d.source.slug for d in obj.dependents.all()]

    def get_has_webhook_secret(self, obj) -> bool:
        return bool(obj.webhook_secret)

    def get_scorecard(self, obj) -> dict | None:
        cards = self.context.get("scorecards")
        card = cards.get(obj.pk) if cards is not None else None
        if card is None:
            card = evaluate_one(obj)
        return {"level": card.level, "percent": card.percent}

    def validate_links(self, value):
        if not isinstance(value, list) or not all(
            isinstance(v, dict) and v.get("url") for v in value
        ):
            raise serializers.ValidationError(
                "Links must be a list of objects with at least a 'url'."
            )
        return value

    def validate_slug(self, value):
        if self.instance is not None and value != self.instance.slug:
            raise serializers.ValidationError("The slug of an existing service cannot change.")
        return value


class ServiceListSerializer(ServiceSerializer):
    class Meta(ServiceSerializer.Meta):
        fields = list(LIST_FIELDS)


class DependencySerializer(serializers.ModelSerializer):
    source = serializers.SlugRelatedField(slug_field="slug", queryset=Service.objects.all())
    target_service = serializers.SlugRelatedField(
        slug_field="slug", queryset=Service.objects.all(), required=False, allow_null=True
    )
    target_resource = serializers.SlugRelatedField(
        slug_field="slug", queryset=Resource.objects.all(), required=False, allow_null=True
    )

    class Meta:
        model = Dependency
        fields = ["id", "source", "target_service", "target_resource"]
        validators = []

    def validate(self, attrs):
        if bool(attrs.get("target_service")) == bool(attrs.get("target_resource")):
            raise serializers.ValidationError(
                {"target_service": "Give exactly one of target_service or target_resource."}
            )
        return attrs


class SystemSerializer(BySlug):
    class Meta:
        model = System
        fields = ["slug", "name", "description", "owner", "domain", "tags", "links", "services"]


class ApiSerializer(BySlug):
    lifecycle_label = serializers.CharField(read_only=True, help_text=LIFECYCLE_LABEL_HELP)

    class Meta:
        model = Api
        fields = [
            "slug",
            "name",
            "description",
            "type",
            "lifecycle",
            "lifecycle_label",
            "owner",
            "system",
            "tags",
            "links",
            "providers",
            "consumers",
            "definition",
        ]


class ResourceSerializer(BySlug):
    class Meta:
        model = Resource
        fields = ["slug", "name", "description", "type", "owner", "system", "tags", "links"]


class ScorecardSerializer(serializers.Serializer):
    service = serializers.CharField()
    owner = serializers.CharField(allow_null=True)
    level = serializers.CharField(allow_null=True)
    passed = serializers.IntegerField()
    applicable = serializers.IntegerField()
    percent = serializers.IntegerField()
    rules = serializers.ListField(child=serializers.DictField())
