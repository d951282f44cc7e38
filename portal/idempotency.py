"""`Idempotency-Key` for every mutating API call.

The first request with a given key (per principal, method and path) is executed and its
answer stored; a repeat gets the stored answer replayed (with `Idempotent-Replayed: true`).
A repeat that arrives while the first is still being executed gets 409. Answers of 5xx are
not stored, so the client can retry with the same key.

The principal is who authenticated, never a header: ``t:<token id>`` for a valid bearer token
(checked on every request, so a token revoked since gets 401, not the stored answer),
``u:<user id>`` for a session. A request with neither is not recorded (the view answers it).

No secret is ever stored in a replayable answer: a view whose answer carries one (the new
token's value) sets ``response.idempotent_replay = (status, body)``, and that is what a repeat
gets, e.g. ``409 {"code": "already_created", ...}`` with the token's id but not its value.
"""

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


class _Refused(Exception):
    def __init__(self, response):
        self.response = response


def _principal(request) -> str | None:
    """``t:<token id>``, ``u:<user id>``, or None (nobody authenticated: not recorded)."""
    try:
        found = BearerTokenAuthentication().authenticate(request)
    except exceptions.AuthenticationFailed as exc:
        resp = JsonResponse(
            {"code": "authentication_failed", "message": str(exc.detail)}, status=401
        )
        resp["WWW-Authenticate"] = 'Bearer realm="api"'
        raise _Refused(resp) from None
    if found is not None:
        return f"t:{found[1].pk}"
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.pk is not None:
        return f"u:{user.pk}"
    return None


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
        try:
            principal = _principal(request)
        except _Refused as refused:
            return refused.response
        if principal is None:
            return self.get_response(request)
        ident = {"key": key, "principal": principal, "method": request.method, "path": request.path}
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(**ident)
        except IntegrityError:
            existing = IdempotencyRecord.objects.filter(**ident).first()
            if existing is None:  # expired and deleted in between: just run it
                return self.get_response(request)
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
        if response.status_code < 500:
            status, body = _replayable(response)
            record.status_code = status
            record.response_body = body
            record.save(update_fields=["status_code", "response_body"])
        else:
            record.delete()
        return response


def purge_expired():
    return IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - KEEP).delete()[0]


def _replayable(response):
    """(status, body) a repeat gets: the answer, or what the view put in its place."""
    replay = getattr(response, "idempotent_replay", None)
    if replay is not None:
        return replay
    try:
        return response.status_code, (json.loads(response.content) if response.content else None)
    except (ValueError, AttributeError):
        return response.status_code, None
