from django import forms
from django.contrib import admin

from pipelines.models import PipelineConfig, PipelineRun, PipelineSecret, StepRun


class StepRunInline(admin.TabularInline):
    model = StepRun
    extra = 0
    can_delete = False
    fields = ["index", "stage", "name", "status", "exit_code", "started_at", "finished_at"]
    readonly_fields = fields


@admin.register(PipelineRun)
class PipelineRunAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "service",
        "number",
        "status",
        "ref",
        "commit_sha",
        "trigger",
        "created_at",
    ]
    list_filter = ["status", "trigger"]
    search_fields = ["service__slug", "ref", "commit_sha"]
    raw_id_fields = ["service", "rerun_of"]
    readonly_fields = ["spec", "log_size", "heartbeat_at", "worker"]
    inlines = [StepRunInline]


@admin.register(PipelineConfig)
class PipelineConfigAdmin(admin.ModelAdmin):
    list_display = ["service", "updated_at", "updated_by"]
    raw_id_fields = ["service"]


class SecretForm(forms.ModelForm):
    """The value is write-only here too: never rendered back."""

    value = forms.CharField(widget=forms.PasswordInput(render_value=False), required=False)

    class Meta:
        model = PipelineSecret
        fields = ["service", "name", "value"]

    def clean_value(self):
        value = self.cleaned_data.get("value")
        if not value and self.instance.pk:
            return self.instance.value  # left empty: keep the current value
        if not value:
            raise forms.ValidationError("Give the secret a value.")
        return value


@admin.register(PipelineSecret)
class PipelineSecretAdmin(admin.ModelAdmin):
    form = SecretForm
    list_display = ["service", "name", "updated_at", "updated_by"]
    search_fields = ["service__slug", "name"]
    raw_id_fields = ["service"]
