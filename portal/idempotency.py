"""`Idempotency-Key` for every mutating API call.

The first request with a given key (per principal, method and path) is executed and its
answer stored; a repeat gets the stored answer replayed (with `Idempotent-Replayed: true`).
A repeat that arrives while the first is still being executed gets 409. Answers of 5xx are
not stored, so the client can retry with the same key.
"""

import hashlib
import json
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from rest_framework import exceptions

from portal.authentication import BearerTokenAuthentication
from portal.models import IdempotencyRecord

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
HEADER = "HTTP_IDEMPOTENCY_KEY"
KEEP = timedelta(hours=24)


def _principal(request):
    auth = request.META.get("HTTP_AUTHORIZATION", "")
    if auth:
        return "t:" + hashlib.sha256(auth.encode()).hexdigest()[:32]
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"u:{user.pk}"
    return "anon:" + (request.META.get("REMOTE_ADDR") or "")


class IdempotencyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        key = request.META.get(HEADER)
        if not key or request.method not in MUTATING or not request.path.startswith("/api/"):
            return self.get_response(request)
        if len(key) > 200:
            return JsonResponse(
                {"code": "invalid", "message": "Idempotency-Key must be at most 200 characters."},
                status=400,
            )
        ident = {
            "key": key,
            "principal": _principal(request),
            "method": request.method,
            "path": request.path,
        }
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(**ident)
        except IntegrityError:
            existing = IdempotencyRecord.objects.filter(**ident).first()
            if existing is None:  # expired and deleted in between: just run it
                return self.get_response(request)
            refused = _credentials_refused(request)
            if refused is not None:
                return refused
            if existing.status_code is None:
                return JsonResponse(
                    {
                        "code": "idempotency_in_progress",
                        "message": "A request with this Idempotency-Key is still being processed.",
                    },
                    status=409,
                )
            if existing.response_body is None:
                resp = HttpResponse(status=existing.status_code)
            else:
                resp = JsonResponse(existing.response_body, status=existing.status_code, safe=False)
            resp["Idempotent-Replayed"] = "true"
            return resp
        response = self.get_response(request)
        body = None
        if response.status_code < 500:
            try:
                body = json.loads(response.content) if response.content else None
            except (ValueError, AttributeError):
                body = None
            record.status_code = response.status_code
            record.response_body = body
            record.save(update_fields=["status_code", "response_body"])
        else:
            record.delete()
        return response


def purge_expired():
    return IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - KEEP).delete()[0]


def _credentials_refused(request):
    """A replay is an answer like any other: a token revoked or expired since the first
    request gets 401, not the stored answer."""
    auth = request.META.get("HTTP_AUTHORIZATION", "")
    if not auth:
        return None
    try:
        BearerTokenAuthentication().authenticate(request)
    except exceptions.AuthenticationFailed as exc:
        resp = JsonResponse(
            {"code": "authentication_failed", "message": str(exc.detail)}, status=401
        )
        resp["WWW-Authenticate"] = 'Bearer realm="api"'
        return resp
    return None
