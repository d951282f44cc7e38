"""The one HTML/HTMX mapping of a domain error (``portal.errors.DomainError``).

A page POST that a service refuses answers, for an HTMX request, a 4xx fragment with the
message; otherwise the "Not allowed" page (403) for ``Forbidden`` and, for any other domain
error, the message on the next page (a redirect). Form pages put the field
errors on the form instead (``add_form_errors``). ``DomainErrorMiddleware`` applies the same
mapping to an error no view handled (redirecting back to the page the request came from).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.html import escape
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.defaults import permission_denied

from portal.errors import DomainError, Forbidden


def domain_error_response(
    request: HttpRequest, exc: DomainError, redirect_to: str | None = None
) -> HttpResponse:
    """HTMX: the message as a fragment with the error's status. ``Forbidden``: the 403 page.
    Otherwise: the message as a flash message and a redirect to ``redirect_to`` (default: the
    page the request came from)."""
    if getattr(request, "htmx", False):
        return HttpResponse(
            f'<div class="alert alert-error" role="alert">{escape(exc.text)}</div>',
            status=exc.status,
        )
    if isinstance(exc, Forbidden):
        return permission_denied(request, exc)
    messages.error(request, exc.text)
    return HttpResponseRedirect(redirect_to or _back(request))


def _back(request: HttpRequest) -> str:
    referer = request.META.get("HTTP_REFERER", "")
    if referer and url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return referer
    return request.path if request.method == "GET" else "/"


def add_form_errors(form: Any, exc: DomainError) -> None:
    """Put a domain error's field errors on ``form`` (unknown fields: on the form itself)."""
    if not exc.errors:
        form.add_error(None, exc.message)
        return
    for field, msgs in exc.errors.items():
        form.add_error(field if field in form.fields else None, msgs)


class DomainErrorMiddleware:
    """A ``DomainError`` no page handled: mapped as above (the API maps its own)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, DomainError) and not request.path.startswith("/api/"):
            return domain_error_response(request, exception)
        return None


def signed_in(what: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """For HTMX buttons: no session answers 401 "Sign in to <what>." (a login redirect would be
    swapped into the page)."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return HttpResponse(f"Sign in to {what}.", status=401)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def board_view(section: Callable[[Any], dict]) -> Callable[..., HttpResponse]:
    """The view a home-page board section refreshes itself from (its template polls it over
    HTMX): the section's own template, rendered with a fresh ``section``."""

    @login_required
    def board(request: HttpRequest) -> HttpResponse:
        fresh = section(request)
        return render(request, fresh["template"], {"section": fresh})

    return board
