"""Admin: environments (deploy driver and its settings), strategies, analysis templates,
releases (read-mostly: act on them through the pages or the API, which audit)."""

from django import forms
from django.contrib import admin

from releases.analysis import validate_metrics
from releases.models import (
    AnalysisTemplate,
    Environment,
    Release,
    StrategyOverride,
)
from releases.strategy import validate


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    list_display = ["name", "title", "order", "production", "driver"]


class StrategyForm(forms.ModelForm):
    class Meta:
        model = StrategyOverride
        fields = ["service", "environment", "steps"]

    def clean_steps(self):
        return validate(self.cleaned_data["steps"])


class TemplateForm(forms.ModelForm):
    class Meta:
        model = AnalysisTemplate
        fields = ["name", "description", "metrics"]

    def clean_metrics(self):
        return validate_metrics(self.cleaned_data["metrics"])


@admin.register(StrategyOverride)
class StrategyOverrideAdmin(admin.ModelAdmin):
    form = StrategyForm
    list_display = ["service", "environment", "updated_at"]
    list_select_related = ["service", "environment"]


@admin.register(AnalysisTemplate)
class AnalysisTemplateAdmin(admin.ModelAdmin):
    form = TemplateForm
    list_display = ["name", "description", "updated_at"]


@admin.register(Release)
class ReleaseAdmin(admin.ModelAdmin):
    list_display = ["id", "service", "environment", "version", "status", "weight", "created_at"]
    list_filter = ["status", "environment"]
    list_select_related = ["service", "environment"]
    search_fields = ["service__slug", "version"]
    readonly_fields = [f.name for f in Release._meta.fields]

    def has_add_permission(self, request):
        return False
