"""The directory sync page (org admins): what the directory pushed over SCIM, and how it went."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count
from django.shortcuts import render
from django.utils import timezone

from identity.directory import squad_slugs_for_groups
from identity.models import DirectoryGroup, DirectoryUser, ScimCall
from portal.actors import Actor
from portal.errors import Forbidden
from portal.models import AuditEvent
from portal.web import domain_error_response


def _groups() -> list[dict]:
    rows = []
    for group in DirectoryGroup.objects.annotate(n=Count("members")).order_by("display_name"):
        names = [group.display_name] + ([group.external_id] if group.external_id else [])
        rows.append(
            {"group": group, "members": group.n, "squads": sorted(squad_slugs_for_groups(names))}
        )
    return rows


@login_required
def directory_sync(request):
    try:
        Actor.from_request(request).require_admin("see the directory sync")
    except Forbidden as exc:
        return domain_error_response(request, exc)
    calls = ScimCall.objects.select_related("token")
    errors_only = request.GET.get("errors") == "1"
    if errors_only:
        calls = calls.filter(status__gte=400)
    since = timezone.now() - timedelta(hours=24)
    recent = ScimCall.objects.filter(created_at__gte=since)
    last_error = ScimCall.objects.filter(status__gte=400).first()
    users = DirectoryUser.objects.select_related("person")
    context = {
        "page": Paginator(calls, 50).get_page(request.GET.get("page")),
        "errors_only": errors_only,
        "calls_24h": recent.count(),
        "errors_24h": recent.filter(status__gte=400).count(),
        "last_call": ScimCall.objects.first(),
        "last_error": last_error,
        "users_active": users.filter(person__active=True).count(),
        "users_inactive": users.filter(person__active=False).count(),
        "groups": _groups(),
        "changes": AuditEvent.objects.filter(door="scim")[:15],
        "scim_url": request.build_absolute_uri("/scim/v2/"),
    }
    return render(request, "identity/directory_sync.html", context)
