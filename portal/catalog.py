"""The base layer's handle on the catalog: the squad model, named by a setting.

Tokens, audit events and event subscriptions belong to a squad; the base names it through
``settings.BACKLINE_SQUAD_MODEL`` (Django's swappable pattern, as ``AUTH_USER_MODEL``) and
never imports the catalog's code.
"""

from django.apps import apps
from django.conf import settings


def squad_model():
    """The squad model class (``settings.BACKLINE_SQUAD_MODEL``, ``"squads.Squad"``)."""
    return apps.get_model(settings.BACKLINE_SQUAD_MODEL, require_ready=False)
