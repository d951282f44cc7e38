from rest_framework import serializers

from pipelines.models import (
    ActionsRun,
    Approval,
    Artifact,
    JenkinsBuild,
    JobRun,
    PipelineRun,
    PipelineSecret,
    StepRun,
)


class StepRunSerializer(serializers.ModelSerializer):
    duration = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = StepRun
        fields = [
            "index",
            "stage",
            "name",
            "kind",
            "command",
            "status",
            "exit_code",
            "timeout",
            "started_at",
            "finished_at",
            "duration",
            "log_offset",
            "truncated",
            "output_bytes",
        ]


class PipelineRunSerializer(serializers.ModelSerializer):
    service = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    squad = serializers.SerializerMethodField()
    branch = serializers.CharField(source="ref", read_only=True)
    duration = serializers.FloatField(read_only=True, allow_null=True)
    is_over = serializers.BooleanField(read_only=True)
    url = serializers.CharField(source="get_absolute_url", read_only=True)
    log_url = serializers.SerializerMethodField()

    class Meta:
        model = PipelineRun
        fields = [
            "id",
            "number",
            "service",
            "squad",
            "status",
            "ref",
            "branch",
            "commit_sha",
            "requested_commit",
            "commit_message",
            "commit_author",
            "trigger",
            "triggered_by",
            "rerun_of",
            "spec_source",
            "error",
            "cancel_requested",
            "log_size",
            "created_at",
            "started_at",
            "finished_at",
            "heartbeat_at",
            "duration",
            "is_over",
            "url",
            "log_url",
        ]
        read_only_fields = fields

    def get_squad(self, obj) -> str | None:
        owner = obj.service.owner
        return owner.slug if owner else None

    def get_log_url(self, obj) -> str:
        return f"/api/v1/runs/{obj.pk}/log"


class JobRunSerializer(serializers.ModelSerializer):
    """A job of a ``jobs:`` pipeline (issue 18)."""

    class Meta:
        model = JobRun
        fields = ["index", "name", "base", "needs", "matrix", "status", "error"]
        fields += ["worker", "started_at", "finished_at"]
        read_only_fields = fields


class ArtifactSerializer(serializers.ModelSerializer):
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Artifact
        fields = ["id", "name", "files", "size", "content_bytes", "sha256", "created_at"]
        fields += ["expires_at", "download_url"]
        read_only_fields = fields

    def get_download_url(self, obj) -> str:
        return f"/api/v1/runs/{obj.run_id}/artifacts/{obj.pk}"


class PipelineRunDetailSerializer(PipelineRunSerializer):
    steps = StepRunSerializer(many=True, read_only=True)
    jobs = JobRunSerializer(many=True, read_only=True)
    spec = serializers.JSONField(read_only=True)

    class Meta(PipelineRunSerializer.Meta):
        fields = PipelineRunSerializer.Meta.fields + ["steps", "jobs", "spec"]
        read_only_fields = fields


class TriggerSerializer(serializers.Serializer):
    ref = serializers.CharField(required=False, allow_blank=True, max_length=255, default="")
    commit = serializers.CharField(required=False, allow_blank=True, max_length=64, default="")


class PipelineSecretSerializer(serializers.ModelSerializer):
    """Write-only value: the API never answers with it."""

    value = serializers.CharField(write_only=True, trim_whitespace=False)

    class Meta:
        model = PipelineSecret
        fields = ["name", "value", "created_at", "updated_at", "updated_by"]
        read_only_fields = ["created_at", "updated_at", "updated_by"]


class SpecSerializer(serializers.Serializer):
    spec = serializers.CharField(allow_blank=True, trim_whitespace=False)


class DecisionSerializer(serializers.Serializer):
    """Body of approve / reject: ``step`` (its index) when several approvals wait at once."""

    step = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=0)
    comment = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")


class ApprovalSerializer(serializers.ModelSerializer):
    squad = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    step = serializers.IntegerField(source="step.index", read_only=True)
    step_name = serializers.CharField(source="step.name", read_only=True)

    class Meta:
        model = Approval
        fields = ["id", "step", "step_name", "squad", "status", "requested_at", "deadline"]
        fields += ["decided_by", "decided_at", "comment"]
        read_only_fields = fields


class ActionsRunSerializer(serializers.ModelSerializer):
    """A GitHub Actions workflow run of the service's repository, as beat last read it."""

    state = serializers.CharField(read_only=True)
    duration = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = ActionsRun
        fields = [
            "run_id",
            "repository",
            "workflow_id",
            "workflow_name",
            "workflow_file",
            "run_number",
            "run_attempt",
            "event",
            "status",
            "conclusion",
            "state",
            "head_branch",
            "head_sha",
            "title",
            "html_url",
            "run_started_at",
            "updated_at",
            "duration",
        ]


class JenkinsBuildSerializer(serializers.ModelSerializer):
    class Meta:
        model = JenkinsBuild
        fields = ["job", "number", "status", "started_at", "duration", "commit", "url"]


class CIRunsSerializer(serializers.Serializer):
    """The service's runs on other CI systems, as Backline last read them: GitHub Actions
    (``github.com/project-slug``) and Jenkins (``jenkins.io/job-full-name``)."""

    repository = serializers.CharField(allow_blank=True)
    polled_at = serializers.DateTimeField(allow_null=True)
    ok_at = serializers.DateTimeField(allow_null=True)
    error = serializers.CharField(allow_blank=True)
    github_actions = ActionsRunSerializer(many=True)
    jenkins_job = serializers.CharField(allow_blank=True)
    jenkins = JenkinsBuildSerializer(many=True)
