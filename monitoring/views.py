"""HTML: dashboards index, service dashboard (page + live fragment), squad overview, alerts."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from metrics.backends import RANGES
from monitoring import dashboards, dora, services
from monitoring.board import board_section
from monitoring.filters import AlertFilter
from monitoring.forms import AlertRuleForm, NotificationChannelForm
from monitoring.models import Alert, AlertRule, Delivery, NotificationChannel
from portal.actors import Actor
from portal.errors import DomainError
from portal.web import board_view, domain_error_response
from squads.models import Service, Squad


def _dashboard_args(request):
    range_key = request.GET.get("range") or "1h"
    track = request.GET.get("track") or "all"
    if range_key not in RANGES:
        raise ValueError(f"range must be one of {', '.join(RANGES)} (got {range_key!r})")
    dashboards.parse_track(track)
    return range_key, track


@login_required
def dashboard_index(request):
    services_qs = (
        Service.objects.select_related("owner")
        .annotate(firing=Count("alerts", filter=Q(alerts__state=Alert.State.FIRING)))
        .order_by("owner__name", "name")
    )
    with_metrics = [s for s in services_qs if s.metrics_urls or s.firing]
    squads = {}
    for s in with_metrics:
        squads.setdefault(s.owner, []).append(s)
    return render(
        request,
        "monitoring/dashboard_index.html",
        {
            "squads": squads.items(),
            "others": Service.objects.exclude(pk__in=[s.pk for s in with_metrics]).count(),
            "firing": Alert.objects.filter(state=Alert.State.FIRING).count(),
            "backend": dashboards.get_backend().name,
        },
    )


@login_required
def service_dashboard(request, slug):
    service = get_object_or_404(Service.objects.select_related("owner"), slug=slug)
    try:
        range_key, track = _dashboard_args(request)
    except ValueError as exc:
        return HttpResponseBadRequest(str(exc))
    ctx = dashboards.service_dashboard(service, range_key, track)
    if request.htmx and request.GET.get("fragment") == "panels":
        return render(request, "monitoring/service_dashboard.html#panels", ctx)
    ctx.update(
        {
            "ranges": list(RANGES),
            "track_choices": ["all", "stable", "canary"],
            "alerts": Alert.objects.filter(
                service=service, state__in=[Alert.State.PENDING, Alert.State.FIRING]
            ),
            "rules": AlertRule.objects.filter(service=service),
            "can_write": Actor.from_request(request).can("alerts:write", service.owner_id),
            "rule_form": AlertRuleForm(),
        }
    )
    return render(request, "monitoring/service_dashboard.html", ctx)


@login_required
def service_panel(request, slug):
    """The service page's lazy-loaded live panel (1 h, both tracks)."""
    service = get_object_or_404(Service.objects.select_related("owner"), slug=slug)
    ctx = dashboards.service_dashboard(service, "1h", "all")
    ctx["alerts"] = Alert.objects.filter(service=service, state=Alert.State.FIRING).select_related(
        "rule"
    )
    return render(request, "monitoring/_service_panel_body.html", ctx)


@login_required
def squad_dashboard(request, slug):
    squad = get_object_or_404(Squad, slug=slug)
    range_key = request.GET.get("range") or "1h"
    if range_key not in RANGES:
        return HttpResponseBadRequest(f"range must be one of {', '.join(RANGES)}")
    ctx = dashboards.squad_overview(squad, range_key)
    ctx.update(
        {
            "squad": squad,
            "dora": dora_context(squad),
            "ranges": list(RANGES),
            "alerts": Alert.objects.filter(
                service__owner=squad, state__in=[Alert.State.PENDING, Alert.State.FIRING]
            ).select_related("rule", "service"),
        }
    )
    if request.htmx and request.GET.get("fragment") == "body":
        return render(request, "monitoring/squad_dashboard.html#body", ctx)
    return render(request, "monitoring/squad_dashboard.html", ctx)


def dora_context(squad, days=30):
    rep = dora.report(Service.objects.filter(owner=squad), days=days)
    m = rep["metrics"]

    def dur(v):
        if v is None:
            return "no data"
        if v < 3600:
            return f"{v / 60:.0f} min"
        if v < 2 * 86400:
            return f"{v / 3600:.1f} h"
        return f"{v / 86400:.1f} d"

    def show(name, v):
        if v is None:
            return "no data"
        if name == "deployment_frequency":
            if v == 0:
                return "none"
            return f"{v:.2f}/day" if v >= 1 / 7 else f"{v * 7:.2f}/week"
        if name == "change_failure_rate":
            return f"{v * 100:.0f} %"
        return dur(v)

    names = [
        ("deployment_frequency", "Deployment frequency"),
        ("lead_time", "Lead time for changes"),
        ("change_failure_rate", "Change failure rate"),
        ("time_to_restore", "Time to restore"),
    ]
    return {
        "days": days,
        "cards": [
            {"label": label, "text": show(n, m[n]["value"]), "level": m[n]["level"]}
            for n, label in names
        ],
        "deployments": m["deployments"],
        "incidents": m["incidents"],
        "trend": [
            {
                "start": p["start"],
                "end": p["end"],
                "cells": [show(n, p[n]["value"]) for n, _ in names],
                "levels": [p[n]["level"] for n, _ in names],
            }
            for p in rep["trend"]
        ],
        "labels": [label for _, label in names],
    }


@login_required
def squad_panel(request, slug):
    squad = get_object_or_404(Squad, slug=slug)
    ctx = dashboards.squad_overview(squad, "1h")
    ctx["squad"] = squad
    ctx["alerts"] = Alert.objects.filter(
        service__owner=squad, state=Alert.State.FIRING
    ).select_related("rule", "service")
    return render(request, "monitoring/_squad_panel_body.html", ctx)


@login_required
def alert_list(request):
    qs = Alert.objects.select_related("rule", "service", "service__owner")
    flt = AlertFilter(request.GET or {"state": ""}, queryset=qs)
    page = Paginator(flt.qs, 50).get_page(request.GET.get("page"))
    ctx = {
        "filter": flt,
        "page": page,
        "firing": Alert.objects.filter(state=Alert.State.FIRING).count(),
        "pending": Alert.objects.filter(state=Alert.State.PENDING).count(),
        "states": [s for s, _ in Alert.State.choices],
        "squads": Squad.objects.only("slug", "name"),
        "filter_qs": _without(request.GET, "fragment"),
    }
    if request.htmx and request.GET.get("fragment") == "results":
        return render(request, "monitoring/alert_list.html#results", ctx)
    ctx.update(
        {
            "rules": AlertRule.objects.select_related("service", "service__owner")[:200],
            "channels": NotificationChannel.objects.select_related("squad"),
            "deliveries": Delivery.objects.select_related("channel", "alert__rule", "outbound")[
                :20
            ],
            "channel_form": NotificationChannelForm(
                squads=_writable_squads(Actor.from_request(request))
            ),
        }
    )
    return render(request, "monitoring/alert_list.html", ctx)


board = board_view(board_section)


@login_required
def alert_detail(request, pk):
    alert = get_object_or_404(Alert.objects.select_related("rule", "service"), pk=pk)
    return render(
        request,
        "monitoring/alert_detail.html",
        {
            "alert": alert,
            "events": alert.events.select_related("alert__rule"),
            "deliveries": alert.deliveries.select_related("channel", "outbound"),
        },
    )


def _without(query, *names):
    q = query.copy()
    for name in names:
        q.pop(name, None)
    return q.urlencode()


def _writable_squads(actor):
    if actor.is_admin:
        return Squad.objects.all()
    return Squad.objects.filter(pk__in=actor.squad_ids())


@login_required
@require_POST
def rule_create(request, slug):
    service = get_object_or_404(Service, slug=slug)
    form = AlertRuleForm(request.POST)
    if not form.is_valid():
        for field, errs in form.errors.items():
            messages.error(request, f"{field}: {' '.join(errs)}")
        return redirect("monitoring:service_dashboard", slug=slug)
    back = reverse("monitoring:service_dashboard", args=[slug])
    try:
        services.create_alert_rule(service, actor=Actor.from_request(request), **form.cleaned_data)
    except DomainError as exc:
        return domain_error_response(request, exc, back)
    messages.success(request, "Alert rule created.")
    return redirect(back)


@login_required
@require_POST
def rule_delete(request, pk):
    rule = get_object_or_404(AlertRule.objects.select_related("service"), pk=pk)
    back = reverse("monitoring:service_dashboard", args=[rule.service.slug])
    try:
        services.delete_alert_rule(rule, actor=Actor.from_request(request))
    except DomainError as exc:
        return domain_error_response(request, exc, back)
    messages.success(request, f"Alert rule “{rule.name}” deleted.")
    return redirect(back)


@login_required
@require_POST
def channel_create(request):
    actor = Actor.from_request(request)
    form = NotificationChannelForm(request.POST, squads=_writable_squads(actor))
    if not form.is_valid():
        for field, errs in form.errors.items():
            messages.error(request, f"{field}: {' '.join(errs)}")
        return redirect("monitoring:alert_list")
    data = dict(form.cleaned_data)
    try:
        services.create_channel(data.pop("squad"), actor=actor, **data)
    except DomainError as exc:
        return domain_error_response(request, exc, reverse("monitoring:alert_list"))
    messages.success(request, "Notification channel added.")
    return redirect("monitoring:alert_list")


alert_list.nav_section = "alerts"
alert_detail.nav_section = "alerts"
