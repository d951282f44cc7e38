"""Identity's own records (directory groups, sync log) live here."""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


def _scim_id() -> str:
    return uuid.uuid4().hex


# --- SCIM (issue 15, build item 4) ------------------------------------------------------------
class _ScimRecord(models.Model):
    """What every SCIM resource row keeps: its SCIM id, externalId, the document as last
    written, a version (the ETag, ``W/"<version>"``) and its dates."""

    id = models.CharField(primary_key=True, max_length=64, default=_scim_id, editable=False)
    external_id = models.CharField(max_length=255, blank=True, db_index=True)
    resource = models.JSONField(default=dict)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        abstract = True


class DirectoryUser(_ScimRecord):
    """A person as the directory pushed them over SCIM: the SCIM ``User`` document as last
    written (``resource``, without ``id``/``meta``/password) and the Person it maps to. The
    Person (name, email, ``active``, ``external_id``) and its Django user are projections of it."""

    person = models.OneToOneField(
        "squads.Person", on_delete=models.CASCADE, related_name="directory_user"
    )
    user_name = models.CharField(max_length=255)
    user_name_key = models.CharField(max_length=255, unique=True)  # lower-cased (caseExact false)

    class Meta:
        ordering = ["user_name_key"]

    def __str__(self):
        return self.user_name


class DirectoryGroup(_ScimRecord):
    """A directory group pushed over SCIM. Its ``display_name`` (or ``external_id``) names a
    squad the way the OpenID group claim does (``identity.directory.squad_slugs_for_groups``);
    its members get a directory membership of that squad."""

    display_name = models.CharField(max_length=255, db_index=True)
    members = models.ManyToManyField(DirectoryUser, related_name="groups", blank=True)

    class Meta:
        ordering = ["display_name"]

    def __str__(self):
        return self.display_name


class ScimCall(models.Model):
    """One SCIM request as the directory sync page lists it: what was asked, how it ended."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    status = models.PositiveSmallIntegerField(db_index=True)
    scim_type = models.CharField(max_length=40, blank=True)
    error = models.TextField(blank=True)
    token = models.ForeignKey(
        "portal.ApiToken", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    token_label = models.CharField(max_length=200, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.method} {self.path} {self.status}"

    @property
    def failed(self) -> bool:
        return self.status >= 400


class UserSession(models.Model):
    """Which sessions a user signed in with (filled at sign-in), so that a directory
    deactivation can end every one of them whatever the session engine."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=True
    )
    session_key = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"{self.user_id}:{self.session_key[:6]}…"
