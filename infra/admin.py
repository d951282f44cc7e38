from django.contrib import admin

from infra.models import TerraformRun, Variable, Workspace


class VariableInline(admin.TabularInline):
    model = Variable
    extra = 0
    exclude = ["value"]
    readonly_fields = ["key", "category", "sensitive", "description"]


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "owner", "source", "drift_status", "lock_run", "auto_apply"]
    list_filter = ["source", "drift_status", "auto_apply"]
    search_fields = ["slug", "name"]
    inlines = [VariableInline]
    readonly_fields = ["lock_run", "locked_at", "state_serial", "state_lineage", "outputs"]


@admin.register(TerraformRun)
class TerraformRunAdmin(admin.ModelAdmin):
    list_display = ["id", "workspace", "number", "kind", "status", "created_by", "created_at"]
    list_filter = ["status", "kind"]
    readonly_fields = [f.name for f in TerraformRun._meta.fields]
