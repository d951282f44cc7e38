"""Model fields that keep secrets encrypted at rest (``portal.crypto``), used by every app.

- :class:`EncryptedTextField`: the whole value (pipeline secrets, variable values, webhook and
  channel secrets, channel URLs, URL credentials).
- :class:`CredentialURLField`: a URL whose user-info part (``https://user:token@host/…``) is
  encrypted in place (``https://fernet.<token>@host/…``); the rest stays clear and queryable.
- :class:`EncryptedKeysJSONField`: a JSON object whose named keys are encrypted (a deploy
  driver's ``secret`` inside its config), the rest stays queryable JSON.

Python code sees clear values; the database only ``fernet:…`` text. Encrypted values cannot be
filtered on (each encryption differs), except for the empty string. ``encrypted_fields()`` lists
every such field of every installed model (``manage.py rotate_secrets_key`` walks them).
"""

from __future__ import annotations

from django.apps import apps
from django.db import models

from portal import crypto
from portal.urlsecrets import USERINFO_RE

URL_MARK = "fernet."


class EncryptedTextField(models.TextField):
    description = "Text encrypted at rest (Fernet, BACKLINE_SECRETS_KEY)"

    def from_db_value(self, value, expression, connection):
        return crypto.decrypt(value) if value is not None else None

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return crypto.encrypt(value) if value is not None else None


class CredentialURLField(models.CharField):
    description = "A URL whose credentials are encrypted at rest"

    def from_db_value(self, value, expression, connection):
        m = USERINFO_RE.match(value or "")
        if not m or not m.group(2).startswith(URL_MARK):
            return value
        userinfo = crypto.decrypt(crypto.PREFIX + m.group(2)[len(URL_MARK) :])
        return m.group(1) + userinfo + "@" + value[m.end() :]

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        m = USERINFO_RE.match(value or "")
        if not m:
            return value
        token = crypto.encrypt(m.group(2))[len(crypto.PREFIX) :]
        return m.group(1) + URL_MARK + token + "@" + value[m.end() :]


class EncryptedKeysJSONField(models.JSONField):
    description = "JSON with some keys encrypted at rest"

    def __init__(self, *args, secret_keys=(), **kwargs):
        self.secret_keys = tuple(secret_keys)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs["secret_keys"] = self.secret_keys
        return name, path, args, kwargs

    def _map(self, value, fn):
        if not isinstance(value, dict):
            return value
        return {
            k: fn(v) if k in self.secret_keys and isinstance(v, str) else v
            for k, v in value.items()
        }

    def from_db_value(self, value, expression, connection):
        return self._map(super().from_db_value(value, expression, connection), crypto.decrypt)

    def get_prep_value(self, value):
        return super().get_prep_value(self._map(value, crypto.encrypt))


def encrypted_fields() -> list[tuple[type[models.Model], models.Field]]:
    """(model, field) for every encrypted field of every installed concrete model."""
    found: list[tuple[type[models.Model], models.Field]] = []
    for model in apps.get_models():
        for f in model._meta.concrete_fields:
            if isinstance(f, EncryptedTextField | EncryptedKeysJSONField | CredentialURLField):
                found.append((model, f))
    return found


def reencrypt(model, field_names, *, batch=500) -> int:
    """Write every row's ``field_names`` again: read with any configured key (or in clear, rows
    from before encryption), written under the first. Returns the rows written."""
    done = 0
    qs = model._default_manager.order_by("pk").values_list("pk", *field_names)
    last = None
    while True:
        page = list((qs.filter(pk__gt=last) if last is not None else qs)[:batch])
        if not page:
            return done
        for pk, *values in page:
            model._default_manager.filter(pk=pk).update(
                **dict(zip(field_names, values, strict=True))
            )
            done += 1
        last = page[-1][0]


def encrypt_existing(app_label: str, model_name: str, *field_names: str):
    """A ``RunPython`` function encrypting the rows a model had before its fields were."""

    def run(apps_, schema_editor):
        reencrypt(apps_.get_model(app_label, model_name), list(field_names))

    return run
