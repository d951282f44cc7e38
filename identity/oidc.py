"""Single sign-on through the organisation's OpenID provider, with Authlib's Django client.

Authorization code flow with PKCE (S256), the provider found by discovery
(``<OIDC_ISSUER>/.well-known/openid-configuration``, whose ``issuer`` must be exactly
``OIDC_ISSUER``), a ``state`` and a ``nonce`` per sign-in kept in the session, and the ID token
checked by Authlib: signature against the provider's JWKS, ``iss``, ``aud`` (and ``azp``),
``exp``/``iat`` (``OIDC_LEEWAY_SECONDS`` of clock skew), ``nonce``, ``at_hash``. Everything
that can go wrong becomes a ``SignInFailed`` with a sentence for the person and an HTTP status:
the views show it on a page, never a 500.
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from authlib.integrations.base_client import MismatchingStateError, OAuthError
from authlib.integrations.django_client import OAuth
from django.conf import settings
from django.urls import reverse
from joserfc.errors import JoseError

log = logging.getLogger(__name__)
NAME = "backline"
SESSION_ID_TOKEN = "identity_oidc_id_token"
SESSION_NEXT = "identity_oidc_next"


class SignInFailed(Exception):
    def __init__(self, message: str, status: int = 400, code: str = "sign_in_failed"):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


def enabled() -> bool:
    return bool(settings.OIDC_ISSUER and settings.OIDC_CLIENT_ID)


def discovery_url() -> str:
    return f"{settings.OIDC_ISSUER}/.well-known/openid-configuration"


def _unavailable(exc: Exception, when: str) -> SignInFailed:
    log.warning("OIDC provider %s unavailable %s: %s", settings.OIDC_ISSUER, when, exc)
    return SignInFailed(
        f"The sign-in provider ({settings.OIDC_PROVIDER_NAME}, {settings.OIDC_ISSUER}) did not "
        f"answer {when}: {type(exc).__name__}. Try again in a moment"
        + (", or sign in with your password." if settings.PASSWORD_LOGIN else "."),
        status=502,
        code="provider_unavailable",
    )


def client() -> Any:
    """A client for the configured provider, its metadata loaded (and checked) now."""
    app = OAuth().register(
        NAME,
        client_id=settings.OIDC_CLIENT_ID,
        client_secret=settings.OIDC_CLIENT_SECRET,
        server_metadata_url=discovery_url(),
        client_kwargs={
            "scope": settings.OIDC_SCOPES,
            "code_challenge_method": "S256",
            "default_timeout": settings.OIDC_TIMEOUT,
        },
    )
    try:
        metadata = app.load_server_metadata()
    except (requests.RequestException, ValueError) as exc:
        raise _unavailable(exc, "at discovery") from exc
    if metadata.get("issuer", "").rstrip("/") != settings.OIDC_ISSUER:
        raise SignInFailed(
            f"The provider's discovery document names the issuer {metadata.get('issuer')!r}, "
            f"not the configured OIDC_ISSUER {settings.OIDC_ISSUER!r}.",
            status=502,
            code="issuer_mismatch",
        )
    return app


def callback_url(request) -> str:
    return request.build_absolute_uri(reverse("oidc_callback"))


def begin(request, next_url: str):
    """The redirect to the provider's authorization endpoint (state, nonce and PKCE verifier
    are kept in this session)."""
    app = client()
    request.session[SESSION_NEXT] = next_url
    try:
        return app.authorize_redirect(request, callback_url(request))
    except (RuntimeError, KeyError) as exc:  # no authorization_endpoint in the metadata
        raise _unusable(exc) from exc


def _token(request, app) -> dict:
    try:
        return app.authorize_access_token(
            request,
            leeway=settings.OIDC_LEEWAY_SECONDS,
            # Authlib checks only ``iss`` unless told: ``aud`` must name this client (OpenID
            # Connect Core 3.1.3.7), whatever ``azp`` says
            claims_options={
                "iss": {"essential": True, "value": app.server_metadata["issuer"]},
                "aud": {"essential": True, "value": settings.OIDC_CLIENT_ID},
            },
        )
    except MismatchingStateError as exc:
        raise SignInFailed(
            "This sign-in response does not belong to a sign-in started in this browser (its "
            "state is unknown, already used or expired). Start the sign-in again.",
            code="state_mismatch",
        ) from exc
    except OAuthError as exc:
        raise SignInFailed(
            f"The provider refused to complete the sign-in ({exc.error}"
            + (f": {exc.description}" if exc.description else "")
            + "). The sign-in code may have been used already or expired; start again.",
            code=str(exc.error or "oauth_error"),
        ) from exc
    except JoseError as exc:
        raise SignInFailed(
            f"The provider's ID token was refused: {exc.description or exc.error}. "
            "Nobody was signed in.",
            code="invalid_id_token",
        ) from exc
    except (requests.RequestException, ValueError) as exc:
        raise _unavailable(exc, "when completing the sign-in") from exc
    except (RuntimeError, KeyError) as exc:  # Authlib: metadata without jwks_uri, token_endpoint
        raise _unusable(exc) from exc


def _unusable(exc: Exception) -> SignInFailed:
    log.warning("OIDC provider %s metadata unusable: %s", settings.OIDC_ISSUER, exc)
    return SignInFailed(
        f"The sign-in provider's configuration cannot be used ({exc}); check its discovery "
        f"document at {discovery_url()}.",
        status=502,
        code="provider_misconfigured",
    )


def complete(request) -> tuple[dict, str]:
    """The provider's verified claims (ID token, topped up from the userinfo endpoint) and the
    ID token itself, for the callback ``request``."""
    error = request.GET.get("error")
    if error:
        described = request.GET.get("error_description") or ""
        raise SignInFailed(
            f"The provider did not sign you in ({error}{': ' + described if described else ''}).",
            code=error[:40],
        )
    if not request.GET.get("code"):
        raise SignInFailed("The sign-in response has no authorization code.", code="no_code")
    app = client()
    token = _token(request, app)
    claims = dict(token.get("userinfo") or {})
    if not claims or not token.get("id_token"):
        raise SignInFailed("The provider returned no ID token.", code="no_id_token")
    if settings.OIDC_GROUPS_CLAIM not in claims and app.server_metadata.get("userinfo_endpoint"):
        claims = {**_userinfo(app, token, claims["sub"]), **claims}
    return claims, token["id_token"]


def _userinfo(app, token: dict, sub: str) -> dict:
    try:
        info = dict(app.userinfo(token=token))
    except (requests.RequestException, ValueError, OAuthError) as exc:
        raise _unavailable(exc, "at the userinfo endpoint") from exc
    if info.get("sub") != sub:  # OpenID Connect Core 5.3.2
        raise SignInFailed("The provider's userinfo is about someone else.", code="sub_mismatch")
    return info


def logout_url(request, id_token: str) -> str | None:
    """The provider's RP-initiated logout URL (back to the sign-in page), or None when the
    provider offers no ``end_session_endpoint``."""
    app = client()
    if not app.server_metadata.get("end_session_endpoint"):
        return None
    result = app.create_logout_url(
        post_logout_redirect_uri=request.build_absolute_uri(reverse("login")),
        id_token_hint=id_token,
        client_id=settings.OIDC_CLIENT_ID,
    )
    return str(result["url"])
