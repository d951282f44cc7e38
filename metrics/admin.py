from django.contrib import admin

from metrics.models import ScrapeTarget


@admin.register(ScrapeTarget)
class ScrapeTargetAdmin(admin.ModelAdmin):
    list_display = ["service", "url", "track", "health", "last_scrape_at", "last_samples"]
    list_filter = ["health"]
    search_fields = ["url", "service__slug"]
