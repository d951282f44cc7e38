"""The Django admin site, audited: every add, change and delete made there is written to the
audit log (door ``admin``) like any other change, next to Django's own admin history.

``portal.adminapp.BacklineAdminConfig`` makes :class:`AuditedAdminSite` the default site, so every
``admin.register`` (Backline's apps and Django's own, e.g. users and groups) gets the audit.
"""

from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib import admin

from portal import audit
from portal.actors import Actor


def _squad_of(obj: Any):
    squad_model = apps.get_model(settings.BACKLINE_SQUAD_MODEL)
    for candidate in (obj, getattr(obj, "squad", None), getattr(obj, "owner", None)):
        if isinstance(candidate, squad_model):
            return candidate
    return None


def _record(request, obj, verb: str, message: Any = "") -> None:
    audit.record(
        Actor.from_request(request, door="admin"),
        f"admin.{obj._meta.label_lower}.{verb}",
        obj,
        squad=_squad_of(obj),
        data={"message": message} if message else {},
    )


class AuditedModelAdmin:
    """Mixed into every registered ModelAdmin by :class:`AuditedAdminSite`."""

    def log_addition(self, request, obj, message):
        entry = super().log_addition(request, obj, message)  # type: ignore[misc]
        _record(request, obj, "add", message)
        return entry

    def log_change(self, request, obj, message):
        entry = super().log_change(request, obj, message)  # type: ignore[misc]
        _record(request, obj, "change", message)
        return entry

    def log_deletions(self, request, queryset):
        entries = super().log_deletions(request, queryset)  # type: ignore[misc]
        for obj in queryset:
            _record(request, obj, "delete")
        return entries


class AuditedAdminSite(admin.AdminSite):
    def register(self, model_or_iterable, admin_class=None, **options):
        admin_class = admin_class or admin.ModelAdmin
        if not issubclass(admin_class, AuditedModelAdmin):
            admin_class = type(
                admin_class.__name__,
                (AuditedModelAdmin, admin_class),
                {"__module__": admin_class.__module__},
            )
        super().register(model_or_iterable, admin_class, **options)
