"""Serializer fields for URLs that carry a credential (``portal.urlsecrets``): write-only in
effect. The API answers the redacted form; a request sending that redacted form back (a client
that PUTs what it GOT) keeps the stored URL."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from rest_framework import serializers

from portal.urlsecrets import keep_if_redacted, redact_credentials, redact_secret_url


class RedactedURLField(serializers.CharField):
    """``secret=False``: a URL whose user-info is a credential (``https://****@host/repo``);
    ``secret=True``: a URL that is a credential (``https://hooks.slack.com/…/****``)."""

    def __init__(self, *, secret: bool = False, url: bool = False, **kwargs):
        self.secret = secret
        self.url = url  # must be an http(s)/ftp URL (checked here: the schema says "string",
        # since what is shown, "https://host/…/****", is no URI)
        super().__init__(**kwargs)

    def to_representation(self, value):
        value = super().to_representation(value)
        return redact_secret_url(value) if self.secret else redact_credentials(value)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        instance = getattr(self.parent, "instance", None)
        old = getattr(instance, self.source or "", "") if instance is not None else ""
        kept = keep_if_redacted(value, old or "", secret_url=self.secret)
        if self.url and kept:
            try:
                URLValidator()(kept)
            except DjangoValidationError as exc:
                raise serializers.ValidationError(exc.messages) from None
        return kept
