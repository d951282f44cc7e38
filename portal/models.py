import hashlib
import secrets

from django.conf import settings
from django.core.validators import MaxLengthValidator
from django.db import models
from django.utils import timezone

from portal.fields import CredentialURLField, EncryptedTextField
from portal.urlsecrets import redact_credentials, redact_secret_url

SCOPES = (
    ("catalog:write", "Write the catalog of the token's squad"),
    ("pipelines:run", "Trigger, cancel and re-run pipelines"),
    ("releases:promote", "Start, promote, abort and retry releases"),
    ("scaling:write", "Scale services and manage their peak-hour schedules"),
    ("infra:apply", "Plan, apply and discard Terraform runs"),
    ("alerts:write", "Manage alert rules and notification channels"),
    ("admin", "Everything, on every squad"),
    ("scim", "Push people and groups from the directory over SCIM (org admins grant it)"),
)
SCOPE_NAMES = tuple(name for name, _ in SCOPES)
TOKEN_PREFIX = "bl_"


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(models.Model):
    """A bot token. Only its SHA-256 is stored; the clear value is shown once on creation."""

    name = models.CharField(max_length=100)
    squad = models.ForeignKey(
        settings.BACKLINE_SQUAD_MODEL, on_delete=models.CASCADE, related_name="tokens"
    )
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


class AuditEvent(models.Model):
    # sso: single sign-on (identity/oidc.py); scim: the directory pushing people and groups;
    # admin: the Django admin site (portal/adminsite.py)
    DOORS = [
        (d, d)
        for d in ("ui", "api", "command", "beat", "webhook", "worker", "admin", "sso", "scim")
    ]

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
        settings.BACKLINE_SQUAD_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
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


class EventSubscription(models.Model):
    """A squad's outbound webhook: HMAC-SHA256 signed JSON for the event types it selects
    (patterns like ``pipeline.*`` or exact names like ``release.promoted``)."""

    squad = models.ForeignKey(
        settings.BACKLINE_SQUAD_MODEL, on_delete=models.CASCADE, related_name="event_subscriptions"
    )
    name = models.CharField(max_length=100)
    # credentials in it (https://user:token@host/…) are encrypted at rest, shown as ****
    url = CredentialURLField(max_length=1000, validators=[MaxLengthValidator(500)])
    secret = EncryptedTextField(validators=[MaxLengthValidator(200)])
    event_types = models.JSONField(default=list)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["squad__name", "name"]

    def __str__(self):
        return f"{self.name} → {redact_credentials(self.url)}"

    def matches(self, event_type: str) -> bool:
        for pattern in self.event_types:
            if pattern == "*" or pattern == event_type:
                return True
            if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
                return True
        return False


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    RETRYING = "retrying", "Retrying"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


class EventDelivery(models.Model):
    """One signed outbound POST, of any kind (``event`` to a subscription, ``alert`` to a
    notification channel, ``deploy`` to a webhook deployer), with its attempts. Sent by
    ``portal.outbound``; the kind's registered sender knows the secret and what to do when it
    is delivered or fails for good."""

    Status = DeliveryStatus
    STATUSES = DeliveryStatus.choices

    kind = models.CharField(max_length=20, default="event", db_index=True)
    subscription = models.ForeignKey(
        EventSubscription,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="deliveries",
    )
    ref = models.CharField(max_length=100, blank=True, db_index=True)  # what it is about
    key = models.CharField(max_length=100, null=True, blank=True, unique=True)  # idempotency
    url = EncryptedTextField(blank=True)  # a channel's URL is a credential (Slack)
    delivery_id = models.UUIDField(unique=True)
    event_type = models.CharField(max_length=64, db_index=True)
    payload = models.JSONField()
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=6)
    timeout_seconds = models.FloatField(default=5.0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    response = models.JSONField(null=True, blank=True)  # the last 2xx answer's JSON, if any
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    redelivery_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        shown = (
            redact_secret_url(self.url) if self.kind == "alert" else redact_credentials(self.url)
        )
        return f"{self.event_type} → {shown} ({self.status})"


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(
        EventDelivery, on_delete=models.CASCADE, related_name="attempt_log"
    )
    at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["at", "id"]
