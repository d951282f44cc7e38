import time

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse

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
