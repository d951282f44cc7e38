"""Sign-in (provider button and, when enabled, the password form), the OIDC redirect and
callback, sign-out (with RP-initiated logout at the provider) and people's profiles."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from identity import guard, oidc, profile
from identity.backends import PATH as PERSON_BACKEND
from identity.forms import GuardedAuthenticationForm
from identity.services import sign_in_person
from portal.actors import Actor
from portal.errors import DomainError
from squads.models import Person


def sign_in_context() -> dict:
    return {
        "oidc_enabled": oidc.enabled(),
        "provider_name": settings.OIDC_PROVIDER_NAME,
        "password_login": settings.PASSWORD_LOGIN,
    }


class SignInView(LoginView):
    template_name = "identity/login.html"
    form_class = GuardedAuthenticationForm
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), **sign_in_context()}

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.lockout is not None:
            response.status_code = 429
            response["Retry-After"] = str(form.lockout.seconds_left)
        elif not settings.PASSWORD_LOGIN:
            response.status_code = 403
        return response


def _safe_next(request, raw: str) -> str:
    if raw and url_has_allowed_host_and_scheme(
        raw, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return raw
    return settings.LOGIN_REDIRECT_URL


def _failed(request, message: str, status: int, retry_after: int | None = None):
    response = render(
        request,
        "identity/sign_in_error.html",
        {"message": message, **sign_in_context()},
        status=status,
    )
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response


def oidc_login(request):
    """Start single sign-on: off to the provider's authorization endpoint."""
    if not oidc.enabled():
        return _failed(request, "Single sign-on is not configured on this installation.", 404)
    try:
        return oidc.begin(request, _safe_next(request, request.GET.get("next", "")))
    except oidc.SignInFailed as exc:
        return _failed(request, exc.message, exc.status)


def oidc_callback(request):
    """The provider sends the browser back here (``<base URL>/oidc/callback/``)."""
    if not oidc.enabled():
        return _failed(request, "Single sign-on is not configured on this installation.", 404)
    ip = request.META.get("REMOTE_ADDR")
    wait = guard.allow_callback(ip)
    if wait:
        return _failed(
            request,
            f"Too many sign-in attempts from your address; try again in "
            f"{guard.humanize_seconds(wait)}.",
            429,
            retry_after=wait,
        )
    next_url = request.session.get(oidc.SESSION_NEXT) or settings.LOGIN_REDIRECT_URL
    try:
        claims, id_token = oidc.complete(request)
        result = sign_in_person(claims, actor=Actor(door="sso", ip=ip))
    except oidc.SignInFailed as exc:
        return _failed(request, exc.message, exc.status)
    except DomainError as exc:
        return _failed(request, exc.text, exc.status)
    auth_login(request, result.user, backend=PERSON_BACKEND)  # a new session key: no fixation
    request.session[oidc.SESSION_ID_TOKEN] = id_token
    request.session.pop(oidc.SESSION_NEXT, None)
    return redirect(next_url)


@require_POST
def sign_out(request):
    """End the Backline session; then, after single sign-on, the provider's session too
    (RP-initiated logout) when it offers an ``end_session_endpoint``."""
    id_token = request.session.get(oidc.SESSION_ID_TOKEN)
    auth_logout(request)
    if id_token and oidc.enabled():
        try:
            url = oidc.logout_url(request, id_token)
        except oidc.SignInFailed:
            messages.warning(
                request,
                f"Signed out of Backline. {settings.OIDC_PROVIDER_NAME} could not be reached, so "
                "you may still be signed in there.",
            )
            url = None
        if url:
            return redirect(url)
    return redirect(settings.LOGOUT_REDIRECT_URL)


@login_required
def my_profile(request):
    person = Person.objects.filter(user=request.user).first()
    if person is None:
        return render(request, "identity/profile.html", profile.context(request, None))
    return redirect("person_profile", slug=person.slug)


@login_required
def person_profile(request, slug):
    person = get_object_or_404(Person.objects.select_related("user"), slug=slug)
    return render(request, "identity/profile.html", profile.context(request, person))
