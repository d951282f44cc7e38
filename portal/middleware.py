import time

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.urls import Resolver404, resolve

from portal import metrics


class RequestMetricsMiddleware:
    """Backline's own request latency histogram for /metrics."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        start = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        view = match.view_name if match else "unmatched"
        metrics.HTTP_LATENCY.labels(
            view=view, method=request.method, status=str(response.status_code)[0] + "xx"
        ).observe(time.perf_counter() - start)
        return response


class DatabaseUnavailableMiddleware:
    """When the database is down, answer 503 quickly instead of a 500 page."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, (OperationalError, InterfaceError)):
            message = "The database is unavailable; try again in a few seconds."
            resp: HttpResponse
            if request.path.startswith("/api/"):
                resp = JsonResponse({"code": "unavailable", "message": message}, status=503)
            else:
                resp = HttpResponse(message, status=503, content_type="text/plain")
            resp["Retry-After"] = "5"
            return resp
        return None


def csp_allow(response: HttpResponse, **sources: str) -> HttpResponse:
    """Let one response load from more places than the installation's policy, e.g.
    ``csp_allow(resp, script_src="https://cdn.example")``; added to that directive only."""
    extra = getattr(response, "csp_extra", {})
    for directive, value in sources.items():
        name = directive.replace("_", "-")
        extra[name] = f"{extra.get(name, '')} {value}".strip()
    response.csp_extra = extra  # type: ignore[attr-defined]
    return response


def _policy(extra: dict[str, str]) -> str:
    directives = []
    for part in settings.CONTENT_SECURITY_POLICY.split(";"):
        name, _, value = part.strip().partition(" ")
        if name:
            directives.append(f"{name} {value} {extra.get(name, '')}".strip())
    return "; ".join(directives)


class SecurityHeadersMiddleware:
    """``Content-Security-Policy`` on every response (``CONTENT_SECURITY_POLICY``: scripts only
    from Backline's own static files, no inline script or ``on*=`` handler, no framing), and
    ``Cache-Control: no-store`` on API answers (they are per principal and may carry a secret
    just created) unless the view chose its own caching. X-Frame-Options, nosniff and the
    Referrer-Policy come from Django's own middleware (settings ``X_FRAME_OPTIONS``, ...)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.process_response(request, self.get_response(request))

    def process_response(self, request, response):
        if settings.CONTENT_SECURITY_POLICY and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = _policy(getattr(response, "csp_extra", {}))
        if request.path.startswith("/api/") and not response.has_header("Cache-Control"):
            response["Cache-Control"] = "no-store"
        return response


class RequestSizeMiddleware:
    """413 for a body longer than the view accepts (``DATA_UPLOAD_MAX_MEMORY_SIZE``, or the
    view's own ``portal.limits.body_limit``), from the declared length, before anything reads it
    (JSON answers under /api/ and /hooks/, a short text otherwise)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _refuse(
                request, 400, "bad_request", "The Content-Length header is not a number."
            )
        if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            limit = _view_limit(request) or settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            if length > limit:
                return _refuse(
                    request,
                    413,
                    "too_large",
                    f"The request body is {length:,} bytes; at most {limit:,} bytes "
                    f"({limit / 2**20:.3g} MB) are accepted here.",
                )
        return self.get_response(request)


def _view_limit(request) -> int | None:
    try:
        view = resolve(request.path_info).func
    except Resolver404:
        return None
    for candidate in (view, getattr(view, "cls", None), getattr(view, "view_class", None)):
        limit = getattr(candidate, "body_limit", None)
        if limit:
            return int(limit)
    return None


def _refuse(request, status: int, code: str, message: str) -> HttpResponse:
    if request.path.startswith(("/api/", "/hooks/")):
        return JsonResponse({"code": code, "message": message}, status=status)
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
