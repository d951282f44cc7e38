"""``/scim/v2/...``: the Django door of the SCIM server.

One view reads the Django request into a ``scim2-server`` ``ScimRequest``, authenticates the
bearer token (a Backline API token with the ``scim`` scope: none or a bad one is 401, one
without the scope 403, in SCIM's error format), serves it with ``ScimHandler`` over
``DjangoStorage`` and writes the ``application/scim+json`` response. Every call is logged
(``ScimCall``) for the directory sync page. ``/ServiceProviderConfig`` needs no token
(RFC 7644 §4).
"""

from __future__ import annotations

import json
import logging
import time

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions as drf_exceptions
from scim2_models import (
    ForbiddenException,
    InvalidValueException,
    PayloadTooLargeException,
    SCIMException,
    UnauthorizedException,
)
from scim2_server.handler import ScimHandler
from scim2_server.requests import ScimRequest
from scim2_server.responses import ScimResponse
from scim2_server.routing import Operation

from identity.scim import calllog
from identity.scim.provider import service
from identity.scim.storage import DjangoStorage
from portal.actors import Actor
from portal.authentication import BearerTokenAuthentication
from portal.models import ApiToken
from portal.throttling import TokenRateThrottle

log = logging.getLogger("identity.scim")
SCOPE = "scim"
PREFIX = "/scim/v2"
MAX_BODY = 1024 * 1024  # a group of ~10,000 members fits; larger pushes are refused with 413


class TooManyRequests(SCIMException):
    """The token's per-minute limit (``ApiToken.rate_limit_per_minute``): Okta and Entra ID
    wait for ``Retry-After`` and send the call again."""

    status = 429
    _default_detail = "Too many requests for this token; retry after the Retry-After seconds."


def _token(request: HttpRequest, holder: dict) -> ApiToken:
    try:
        found = BearerTokenAuthentication().authenticate(request)
    except drf_exceptions.AuthenticationFailed as exc:
        raise UnauthorizedException(detail=str(exc.detail)) from exc
    if found is None:
        raise UnauthorizedException(detail="Send a Backline API token: 'Authorization: Bearer …'.")
    token = holder["token"] = found[1]  # logged with the call, also when refused below
    if SCOPE not in (token.scopes or []):
        raise ForbiddenException(detail=f"The token lacks the scope '{SCOPE}'.")
    request.auth = token  # type: ignore[attr-defined]  # what the API's throttle reads
    throttle = TokenRateThrottle()
    if not throttle.allow_request(request, None):
        raise TooManyRequests(retry_after=throttle.wait())
    return token


def _scim_request(request: HttpRequest, rest: str) -> ScimRequest:
    length = str(request.META.get("CONTENT_LENGTH") or "0")
    if length.isdigit() and int(length) > MAX_BODY:
        raise PayloadTooLargeException(detail=f"The body is over {MAX_BODY} bytes.")
    headers = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
    return ScimRequest(
        method=request.method or "GET",
        base_url=request.build_absolute_uri(PREFIX),
        path="/" + rest.removesuffix(".scim"),
        query={k: request.GET.get(k, "") for k in request.GET},
        headers=headers,
        body=request.body,
    )


def _refuse_nul(scim: ScimRequest) -> None:
    """PostgreSQL text cannot hold U+0000: refuse it up front, naming where it is."""
    if "\x00" in scim.path:
        raise InvalidValueException(detail="The path contains a NUL character (U+0000).")
    for key, value in scim.query.items():
        if "\x00" in key or "\x00" in value:
            raise InvalidValueException(detail=f"Query parameter '{key}' contains U+0000.")
    if b"\x00" in scim.body or b"\\u0000" in scim.body:
        raise InvalidValueException(detail="The body contains a NUL character (\\u0000).")


def _serve(request: HttpRequest, scim: ScimRequest, holder: dict) -> ScimResponse:
    svc = service()
    try:
        needs_auth = svc.match(scim).operation is not Operation.service_provider_config
    except SCIMException:
        needs_auth = True
    if needs_auth:
        token = _token(request, holder)
        _refuse_nul(scim)
        actor = Actor(token=token, door="scim", ip=request.META.get("REMOTE_ADDR"))
    else:
        actor = Actor.system("scim", door="scim")
    return ScimHandler(svc, DjangoStorage(actor)).handle(scim)


@csrf_exempt
def scim_endpoint(request: HttpRequest, rest: str = "") -> HttpResponse:
    started = time.monotonic()
    holder: dict = {"token": None}
    try:
        response = _serve(request, _scim_request(request, rest), holder)
    except SCIMException as exc:
        response = service().error_response(exc)
        if isinstance(exc, TooManyRequests):
            response.headers["Retry-After"] = str(exc.context["retry_after"])
    except Exception as exc:  # noqa: BLE001 - a bug: logged, answered as a SCIM 500
        log.exception("SCIM %s %s failed", request.method, request.path)
        response = service().error_response(exc)
    response.headers.setdefault("Cache-Control", "no-cache")
    out = HttpResponse(
        b"" if response.body is None else json.dumps(response.body).encode(),
        status=int(response.status),
    )
    for key, value in response.headers.items():
        out[key] = value
    calllog.record(request, out.status_code, response.body, holder["token"], started)
    return out
