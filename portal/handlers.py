"""Error pages: JSON for /api/ paths (the one error format), HTML for people."""

from django.http import JsonResponse
from django.views import defaults


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"code": "not_found", "message": f"No API endpoint or object at {request.path}."},
            status=404,
        )
    return defaults.page_not_found(request, exception)


def server_error(request):
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"code": "server_error", "message": "Internal error; it has been logged."}, status=500
        )
    return defaults.server_error(request)


def bad_request(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse({"code": "bad_request", "message": "Malformed request."}, status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"code": "permission_denied", "message": str(exception) or "Forbidden."}, status=403
        )
    return defaults.permission_denied(request, exception)
