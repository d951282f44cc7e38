"""Django's admin app with Backline's audited default site (see ``portal.adminsite``)."""

from django.contrib.admin.apps import AdminConfig


class BacklineAdminConfig(AdminConfig):
    default_site = "portal.adminsite.AuditedAdminSite"
