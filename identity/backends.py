"""The sign-in backend: Django's ``ModelBackend`` whose session user comes with its catalog
person (every page shows the person's name: one query per request fewer)."""

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

PATH = "identity.backends.PersonBackend"


class PersonBackend(ModelBackend):
    """Listed before ``ModelBackend``, which stays listed so sessions signed in before it keep
    working (a session names its backend)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None and password is not None:
            # the same check failed: stop here rather than let ModelBackend hash the password
            # again (authenticate() sends user_login_failed and returns None)
            raise PermissionDenied
        return user

    def get_user(self, user_id):
        user_model = get_user_model()
        try:
            user = user_model._default_manager.select_related("person").get(pk=user_id)
        except user_model.DoesNotExist:
            return None
        return user if self.user_can_authenticate(user) else None
