import hmac
from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from drf_spectacular.settings import spectacular_settings
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularSwaggerSplitView
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from portal import events, services
from portal.actors import Actor
from portal.board import board_context, refresh_gauges
from portal.catalog import squad_model
from portal.errors import DomainError
from portal.filters import AuditEventFilter
from portal.listing import render_list
from portal.middleware import csp_allow
from portal.models import SCOPES, ApiToken, AuditEvent, EventDelivery, EventSubscription


@login_required
def home(request):
    return render(request, "portal/home.html", board_context(request))


@login_required
def audit_list(request):
    qs = AuditEvent.objects.select_related("squad")
    flt = AuditEventFilter(request.GET, queryset=qs)
    return render_list(
        request,
        "portal/audit_list.html",
        flt,
        per_page=50,
        doors=[d for d, _ in AuditEvent.DOORS],
    )


@login_required
@never_cache  # the page shows a new token once: never stored by a browser or proxy
def token_list(request):
    actor = Actor.from_request(request)
    created = None
    status = 200
    if request.method == "POST":
        squad = get_object_or_404(squad_model(), slug=request.POST.get("squad", ""))
        scopes = [s for s in request.POST.getlist("scopes") if s in dict(SCOPES)]
        name = (request.POST.get("name") or "").strip()
        days = request.POST.get("expires_in_days") or ""
        if not name:
            messages.error(request, "Give the token a name.")
        else:
            try:
                expires_at = timezone.now() + timedelta(days=int(days)) if days.strip() else None
                token, raw = services.create_token(
                    squad, actor=actor, name=name, scopes=scopes, expires_at=expires_at
                )
                created = {"token": token, "raw": raw}
            except ValueError:
                messages.error(request, "Expiry must be a whole number of days.")
            except DomainError as exc:  # the page again, with the reason
                messages.error(request, exc.text)
                status = exc.status
    if actor.is_admin:
        tokens = ApiToken.objects.select_related("squad", "created_by")
        squads = squad_model().objects.all()
    else:
        ids = actor.squad_ids()
        tokens = ApiToken.objects.select_related("squad", "created_by").filter(squad_id__in=ids)
        squads = squad_model().objects.filter(pk__in=ids)
    return render(
        request,
        "portal/token_list.html",
        {"tokens": tokens, "squads": squads, "scopes": SCOPES, "created": created},
        status=status,
    )


@login_required
@require_POST
def token_revoke(request, pk):
    token = get_object_or_404(ApiToken.objects.select_related("squad"), pk=pk)
    services.revoke_token(
        token, actor=Actor.from_request(request)
    )  # refused: the 403 page says why
    messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("token_list")


def healthz(request):
    status = {"database": "ok", "redis": "ok"}
    code = 200
    try:
        with connection.cursor() as cur:
            cur.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - report any failure
        status["database"] = f"error: {exc.__class__.__name__}"
        code = 503
    try:
        cache.get("healthz")
    except Exception as exc:  # noqa: BLE001
        status["redis"] = f"error: {exc.__class__.__name__}"
        code = 503
    return JsonResponse(status, status=code)


def metrics_view(request):
    """Prometheus exposition; with ``METRICS_TOKEN`` set, only for ``Authorization: Bearer
    <token>`` (what Prometheus' ``authorization`` scrape config sends)."""
    wanted = settings.METRICS_TOKEN
    if wanted:
        scheme, _, given = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), wanted.encode()
        ):
            response = HttpResponse(
                "401 Unauthorized: /metrics needs 'Authorization: Bearer <METRICS_TOKEN>'.\n",
                status=401,
                content_type="text/plain",
            )
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    refresh_gauges()
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)


@login_required
def event_list(request):
    actor = Actor.from_request(request)
    status = 200
    if request.method == "POST":
        squad = get_object_or_404(squad_model(), slug=request.POST.get("squad", ""))
        types = request.POST.getlist("event_types")
        name = (request.POST.get("name") or "").strip()
        url = (request.POST.get("url") or "").strip()
        secret = request.POST.get("secret") or ""
        try:
            services.create_subscription(
                squad, actor=actor, name=name, url=url, secret=secret, event_types=types
            )
            messages.success(request, f"Subscription “{name}” created.")
            return redirect("event_list")
        except DomainError as exc:  # the page again, with the reason
            messages.error(request, exc.text)
            status = exc.status
    subs = EventSubscription.objects.select_related("squad")
    deliveries = EventDelivery.objects.filter(kind=events.KIND).select_related(
        "subscription", "subscription__squad"
    )
    if not actor.is_admin:
        ids = actor.squad_ids()
        subs = subs.filter(squad_id__in=ids)
        deliveries = deliveries.filter(subscription__squad_id__in=ids)
        squads = squad_model().objects.filter(pk__in=ids)
    else:
        squads = squad_model().objects.all()
    return render(
        request,
        "portal/event_list.html",
        {
            "subs": subs,
            "deliveries": deliveries[:50],
            "squads": squads,
            "families": events.families(),
            "event_types": events.event_types(),
        },
        status=status,
    )


@login_required
@require_POST
def event_redeliver(request, pk):
    delivery = get_object_or_404(EventDelivery.objects.select_related("subscription__squad"), pk=pk)
    events.redeliver(Actor.from_request(request), delivery)  # refused: the 403 page says why
    messages.success(request, "Redelivery queued.")
    return redirect("event_list")


class ApiDocsView(SpectacularSwaggerSplitView):
    """Swagger UI: its init script is a file of its own (no inline script), its bundle comes from
    ``SWAGGER_UI_DIST``, which the page's Content-Security-Policy allows for this page only."""

    @extend_schema(exclude=True)
    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        dist = str(spectacular_settings.SWAGGER_UI_DIST)
        if dist.startswith(("https://", "http://")):
            origin = "/".join(dist.split("/", 3)[:3])
            csp_allow(response, script_src=origin, style_src=origin, img_src=origin)
        return response
