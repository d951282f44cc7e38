"""The discovery page: every repository of the GitHub installation, its descriptor's status,
the errors of the last scan (per repository, with file and field) and orphaned entities."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.shortcuts import render

from portal import github
from squads.discovery.models import DiscoveredEntity, DiscoveredRepository

PAGE_SIZE = 100


@login_required
def discovery(request):
    rows = DiscoveredRepository.objects.select_related("owner").annotate(
        entity_count=Count("entities", filter=Q(entities__orphaned_at__isnull=True))
    )
    status = request.GET.get("status", "")
    if status in DiscoveredRepository.Status.values:
        rows = rows.filter(status=status)
    squad = request.GET.get("squad", "")
    if squad:
        rows = rows.filter(owner__slug=squad)
    page = Paginator(rows.order_by("-status", "full_name"), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    counts = dict(
        DiscoveredRepository.objects.values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    orphans = DiscoveredEntity.objects.filter(orphaned_at__isnull=False).select_related(
        "repository"
    )[:200]
    return render(
        request,
        "squads/discovery.html",
        {
            "page": page,
            "counts": counts,
            "orphans": orphans,
            "status": status,
            "configured": github.configured(),
            "path": settings.GITHUB_DISCOVERY_PATH,
            "grace_hours": settings.GITHUB_ORPHAN_GRACE_SECONDS / 3600,
        },
    )


discovery.nav_section = "catalog"
