from django.utils import timezone
from rest_framework import authentication, exceptions

from portal.models import ApiToken, hash_token


class _TokenUser:
    """Stand-in for request.user when a bot token authenticates: authenticated, not a person."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False
    is_active = True
    pk = None
    id = None

    def __init__(self, token):
        self.token = token
        self.username = f"token:{token.name}"

    def get_username(self):
        return self.username

    def __str__(self):
        return self.username


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode(errors="replace")
        if not header:
            return None
        parts = header.split()
        if parts[0].lower() not in ("bearer", "token"):
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'.")
        token = (
            ApiToken.objects.select_related("squad").filter(key_hash=hash_token(parts[1])).first()
        )
        if token is None:
            raise exceptions.AuthenticationFailed("Unknown API token.")
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This API token has been revoked.")
        if token.is_expired:
            raise exceptions.AuthenticationFailed("This API token has expired.")
        now = timezone.now()
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return (_TokenUser(token), token)

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class SessionAuthentication(authentication.SessionAuthentication):
    """Session auth for the browser (CSRF enforced on unsafe methods)."""
