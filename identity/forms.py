"""The password sign-in forms (Backline's and the admin site's), behind the brute-force guard."""

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm

from identity import guard
from portal import audit
from portal.actors import Actor


def _actor(request, username: str) -> Actor:
    ip = request.META.get("REMOTE_ADDR") if request is not None else None
    return Actor(door="ui", ip=ip, system_name=f"sign-in as {username[:100]!r}")


class GuardedLoginMixin:
    """``clean()`` refuses a locked-out username or address before checking the password,
    counts each wrong password and audits failures and lockouts."""

    lockout: guard.Lockout | None = None
    request: object
    cleaned_data: dict

    def clean(self):
        if not settings.PASSWORD_LOGIN:
            raise forms.ValidationError(
                "Password sign-in is turned off on this installation; use single sign-on.",
                code="password_login_off",
            )
        username = (self.cleaned_data.get("username") or "").strip()
        actor = _actor(self.request, username)
        self.lockout = guard.current_lockout(username, actor.ip)
        if self.lockout is not None:
            raise forms.ValidationError(self.lockout.message, code="locked")
        try:
            cleaned = super().clean()  # type: ignore[misc]
        except forms.ValidationError as exc:
            if getattr(exc, "code", None) == "invalid_login":
                self._failed(username, actor)
            raise
        guard.record_success(username)
        return cleaned

    def _failed(self, username: str, actor: Actor) -> None:
        started = guard.record_failure(username, actor.ip)
        audit.record(actor, "auth.login_failed", username, target_type="auth.login")
        if started is not None:
            self.lockout = started
            audit.record(
                actor,
                "auth.locked_out",
                username,
                target_type="auth.login",
                data={"scope": started.scope, "seconds": settings.LOGIN_LOCKOUT_SECONDS},
            )
            raise forms.ValidationError(started.message, code="locked")


class GuardedAuthenticationForm(GuardedLoginMixin, AuthenticationForm):
    pass


class GuardedAdminAuthenticationForm(GuardedLoginMixin, AdminAuthenticationForm):
    pass
