"""Release pages. Thin: every POST calls one function of ``releases.services``.

The release page and its live fragment are one view (``request.htmx`` answers the fragment,
polled every 2 s while the release is in flight). Actions answer the fragment too, with 403 /
409 and the reason shown in place when refused; anonymous POSTs get 401.
"""

import time

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from metrics.backends import BackendError, get_backend
from monitoring.charts import line_chart
from portal.actors import Actor
from portal.errors import DomainError
from portal.listing import render_list
from portal.web import board_view, domain_error_response, signed_in
from releases import services, strategy
from releases.board import board_section
from releases.filters import ReleaseFilter
from releases.models import (
    ACTIVE_RELEASE,
    Environment,
    Release,
    ReleaseStatus,
)
from squads.models import Service


def _nav(view):
    view.nav_section = "releases"
    return view


def _qs():
    return Release.objects.select_related("service", "service__owner", "environment")


@_nav
@login_required
def release_list(request):
    flt = ReleaseFilter(request.GET, queryset=_qs())
    return render_list(
        request,
        "pipelines/releases/list.html",
        flt,
        statuses=ReleaseStatus.values,
        environments=Environment.objects.all(),
        in_flight=Release.objects.filter(status__in=ACTIVE_RELEASE).count(),
    )


def _timeline(r):
    """The strategy's steps with done / current / upcoming."""
    out = []
    final = r.status in (ReleaseStatus.SUCCEEDED, ReleaseStatus.ABORTED, ReleaseStatus.FAILED)
    for i, step in enumerate(r.strategy or []):
        if i < r.step_index:
            state = "done"
        elif i == r.step_index and not (final and r.status == ReleaseStatus.SUCCEEDED):
            state = (
                r.status if final else ("paused" if r.status == ReleaseStatus.PAUSED else "current")
            )
        else:
            state = "skipped" if final and r.status == ReleaseStatus.SUCCEEDED else "upcoming"
        ((kind, _),) = step.items()
        out.append({"index": i, "kind": kind, "text": strategy.describe(step), "state": state})
    return out


def _fmt(metric, v):
    if v is None:
        return "—"
    if metric["kind"] == "p99":
        return f"{v:.0f} ms"
    if metric["kind"] in ("query", ""):
        return f"{v:.4g}"
    return f"{v * 100:.2f} %"


def _analysis(r):
    runs = []
    for run in r.analysis_runs.prefetch_related("measurements").order_by("-started_at", "-id"):
        by_metric = {}
        for m in run.measurements.all():
            by_metric.setdefault(m.metric, []).append(m)
        rows = []
        for metric in run.metrics:
            ms = by_metric.get(metric["name"], [])
            last = ms[-1] if ms else None
            rows.append(
                {
                    "metric": metric,
                    "measurements": ms,
                    "last": last,
                    "canary": _fmt(metric, last.value if last else None),
                    "stable": _fmt(metric, last.stable_value if last else None),
                    "threshold": _fmt(metric, last.threshold if last else None),
                }
            )
        defs = {m["name"]: m for m in run.metrics}
        every = [
            {
                "m": m,
                "canary": _fmt(defs.get(m.metric, {"kind": ""}), m.value),
                "stable": _fmt(defs.get(m.metric, {"kind": ""}), m.stable_value),
                "threshold": _fmt(defs.get(m.metric, {"kind": ""}), m.threshold),
            }
            for m in sorted(run.measurements.all(), key=lambda m: (m.at, m.metric))
        ]
        runs.append({"run": run, "rows": rows, "all": every, "count": len(every)})
    return runs


# the release page's charts: (key, golden signal, title, unit, element id)
RELEASE_CHARTS = [
    ("error_ratio", "error_ratio", "Error ratio, canary vs stable", "%", "chart-error-ratio"),
    ("p99", "p99", "p99 latency, canary vs stable", "s", "chart-p99"),
    ("rate", "request_rate", "Requests, canary vs stable", "req/s", "chart-rate"),
]


def _charts(r):
    """Canary vs stable error ratio and p99 over the release (from the metrics backend)."""
    start = (r.started_at or r.created_at).timestamp() - 60
    end = r.finished_at.timestamp() + 30 if r.finished_at else time.time()
    span = max(end - start, 60)
    step = max(round(span / 60), 2)
    window = max(step * 2, 30)
    try:
        data = get_backend().golden_signals(
            r.service, ["stable", "canary"], start, end, step, window
        )
    except BackendError as exc:
        return {"error": str(exc)}
    tracks = {track: data.get(track, {}) for track in ("stable", "canary")}
    return {
        key: line_chart(
            title,
            unit,
            {track: signals.get(signal, []) for track, signals in tracks.items()},
            start,
            end,
            chart_id=chart_id,
        )
        for key, signal, title, unit, chart_id in RELEASE_CHARTS
    }


def _context(request, r, error=""):
    actor = Actor.from_request(request)
    live = r.is_active or bool(r.driver_action) or r.applying
    return {
        "release": r,
        "service": r.service,
        "steps": _timeline(r),
        "current": strategy.describe(r.current_step) if r.current_step else None,
        "analysis": _analysis(r),
        "events": list(r.events.order_by("-at", "-id")[:60]),
        "charts": _charts(r),
        "can_act": actor.can(services.SCOPE, r.service.owner),
        "allowed": services.allowed_actions(r, actor),
        "live": live,
        "error": error,
    }


@_nav
@login_required
def release_detail(request, pk):
    r = get_object_or_404(_qs(), pk=pk)
    ctx = _context(request, r)
    if request.htmx:
        return render(request, "pipelines/releases/detail.html#live", ctx)
    return render(request, "pipelines/releases/detail.html", ctx)


ACTIONS = {
    "promote": services.promote_release,
    "promote_full": services.promote_release_full,
    "abort": services.abort_release,
    "retry": services.retry_release,
}


def _act(request, pk, name):
    r = get_object_or_404(_qs(), pk=pk)
    actor = Actor.from_request(request, door="ui")
    kwargs = {}
    if name == "promote" and request.POST.get("step", "").isdigit():
        kwargs["step"] = int(request.POST["step"])
    try:
        r = ACTIONS[name](r, actor=actor, **kwargs)
    except DomainError as exc:
        if not request.htmx:
            return domain_error_response(request, exc, r.get_absolute_url())
        # the live part again, with the reason in place
        r = get_object_or_404(_qs(), pk=pk)
        ctx = _context(request, r, exc.text)
        return render(request, "pipelines/releases/detail.html#live", ctx, status=exc.status)
    r = get_object_or_404(_qs(), pk=pk)
    if request.htmx:
        return render(request, "pipelines/releases/detail.html#live", _context(request, r))
    return redirect(r.get_absolute_url())


def _action_view(name):
    """The POST view of one release action button (``ACTIONS[name]``)."""

    @require_POST
    @signed_in("act on releases")
    def view(request, pk):
        return _act(request, pk, name)

    view.__name__ = view.__qualname__ = f"release_{name}"
    return view


release_promote = _action_view("promote")
release_promote_full = _action_view("promote_full")
release_abort = _action_view("abort")
release_retry = _action_view("retry")


@require_POST
@signed_in("start a release")
def release_start(request, slug):
    """The Start release button on the service page."""
    service = get_object_or_404(Service.objects.select_related("owner"), slug=slug)
    actor = Actor.from_request(request, door="ui")
    try:
        r = services.create_release(
            service,
            actor=actor,
            environment=request.POST.get("environment", ""),
            version=request.POST.get("version", ""),
            commit=request.POST.get("commit", ""),
            trigger="ui",
        )
    except DomainError as exc:
        return domain_error_response(request, exc, service.get_absolute_url())
    return redirect(r.get_absolute_url())


def current_releases(service):
    """The release in flight (or the latest) per environment of a service."""
    out = []
    for env in Environment.objects.all():
        r = (
            Release.objects.filter(service=service, environment=env)
            .select_related("environment")
            .order_by("-created_at", "-id")
            .first()
        )
        if r is not None:
            out.append(r)
    return out


@login_required
def service_panel(request, slug):
    service = get_object_or_404(Service.objects.select_related("owner"), slug=slug)
    ctx = {
        "service": service,
        "releases": current_releases(service),
        "environments": Environment.objects.all(),
        "can_act": Actor.from_request(request).can(services.SCOPE, service.owner),
    }
    return render(request, "pipelines/releases/service_panel.html#body", ctx)


board = board_view(board_section)
