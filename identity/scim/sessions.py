"""Ending every session of a user, whatever ``SESSION_ENGINE`` stores them in.

Django's session stores cannot list a user's sessions (the database store keeps them encoded,
the cache store has no index at all), so each sign-in records its session key here
(``UserSession``) and a sign-out forgets it. ``end_all_sessions`` deletes each recorded session
through the configured engine. Backstop for sessions made before the index existed: the user is
also made inactive, and Django's authentication middleware treats an inactive user's session as
anonymous on its next request.
"""

from importlib import import_module

from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_logged_out

from identity.models import UserSession


def _store(session_key=None):
    return import_module(settings.SESSION_ENGINE).SessionStore(session_key=session_key)


def remember_session(sender, request, user, **kwargs):
    session = getattr(request, "session", None)
    key = getattr(session, "session_key", None)
    if user is None or not key:
        return
    UserSession.objects.update_or_create(session_key=key, defaults={"user": user})


def forget_session(sender, request, user, **kwargs):
    session = getattr(request, "session", None)
    key = getattr(session, "session_key", None)
    if key:
        UserSession.objects.filter(session_key=key).delete()


def end_all_sessions(user) -> int:
    """Delete every recorded session of ``user``; the number ended."""
    keys = list(UserSession.objects.filter(user=user).values_list("session_key", flat=True))
    for key in keys:
        _store(key).delete(key)
    UserSession.objects.filter(session_key__in=keys).delete()
    return len(keys)


def connect() -> None:
    user_logged_in.connect(remember_session, dispatch_uid="identity.remember_session")
    user_logged_out.connect(forget_session, dispatch_uid="identity.forget_session")
