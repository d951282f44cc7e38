import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

SCOPES = (
    ("catalog:write", "Write the catalog of the token's squad"),
    ("pipelines:run", "Trigger, cancel and re-run pipelines"),
    ("releases:promote", "Start, promote, abort and retry releases"),
    ("infra:apply", "Plan, apply and discard Terraform runs"),
    ("alerts:write", "Manage alert rules and notification channels"),
    ("admin", "Everything, on every squad"),
)
SCOPE_NAMES = tuple(name for name, _ in SCOPES)
TOKEN_PREFIX = "bl_"


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(models.Model):
    """A bot token. Only its SHA-256 is stored; the clear value is shown once on creation."""

    name = models.CharField(max_length=100)
    squad = models.ForeignKey("squads.Squad", on_delete=models.CASCADE, related_name="tokens")
    scopes = models.JSONField(default=list, blank=True)
    key_prefix = models.CharField(max_length=16, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    rate_limit_per_minute = models.PositiveIntegerField(default=600)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.key_prefix}…)"

    @classmethod
    def generate(cls, *, squad, name, scopes, expires_at=None, created_by=None):
        raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(
            squad=squad,
            name=name,
            scopes=sorted(set(scopes)),
            key_prefix=raw[:10],
            key_hash=hash_token(raw),
            expires_at=expires_at,
            created_by=created_by,
        )
        return token, raw

    @property
    def is_expired(self):
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_active(self):
        return self.revoked_at is None and not self.is_expired

    def has_scope(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


class AuditEvent(models.Model):
    DOORS = [(d, d) for d in ("ui", "api", "command", "beat", "webhook", "worker")]

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_token = models.ForeignKey(
        ApiToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor = models.CharField(max_length=200, help_text="Who, as shown to people")
    door = models.CharField(max_length=16, choices=DOORS, db_index=True)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64, db_index=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=300, blank=True)
    squad = models.ForeignKey(
        "squads.Squad", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ip = models.GenericIPAddressField(null=True, blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.actor} {self.action} {self.target_type}:{self.target_repr}"


class IdempotencyRecord(models.Model):
    """First answer to a mutating API call made with an Idempotency-Key, replayed on repeats."""

    key = models.CharField(max_length=200)
    principal = models.CharField(max_length=100)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    status_code = models.PositiveSmallIntegerField(null=True)
    response_body = models.JSONField(null=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["key", "principal", "method", "path"], name="idem_unique"
            )
        ]
