"""The one domain error. Services raise these (never an HTTP or DRF exception).

Each door maps them once: the API in ``portal.api.errors.exception_handler`` (JSON
``{"code", "message", "errors", "state"}`` with ``status``), HTML pages in
``portal.web.domain_error_response`` (a message and a redirect, or a 4xx fragment for HTMX).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError

FieldErrors = dict[str, list[str]]


class DomainError(Exception):
    """An action refused by the domain: ``code``, ``message``, the object's current ``state``
    and per-field ``errors``; ``status`` is the HTTP status a door should answer with."""

    status = 400
    default_code = "error"
    default_message = "The action could not be done."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        state: Any = None,
        errors: dict[str, Any] | None = None,
    ) -> None:
        self.errors: FieldErrors = _normalise(errors or {})
        self._summary = bool(message)  # a message that sums the field errors up
        self.message: str = message or _first(self.errors) or self.default_message
        self.code: str = code or self.default_code
        self.state = state
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    @property
    def text(self) -> str:
        """One line for a person: the message given, or every field error."""
        if self._summary or not self.errors or set(self.errors) == {"non_field_errors"}:
            return self.message
        return "; ".join(
            " ".join(msgs) if key == "non_field_errors" else f"{key}: {' '.join(msgs)}"
            for key, msgs in self.errors.items()
        )


class Invalid(DomainError):
    """Bad input (400): ``errors`` names each field at fault."""

    status = 400
    default_code = "invalid"
    default_message = "Invalid input."

    @classmethod
    def from_django(cls, exc: DjangoValidationError, field: str | None = None) -> Invalid:
        """The same errors as a Django ``ValidationError`` (from ``full_clean`` or a validator);
        ``field`` puts messages that name no field under that field."""
        if hasattr(exc, "error_dict"):
            errors = {
                (field if key == "__all__" and field else key): msgs
                for key, msgs in exc.message_dict.items()
            }
            if "__all__" in errors:
                errors["non_field_errors"] = errors.pop("__all__")
            return cls(errors=errors)
        return cls(errors={field or "non_field_errors": list(exc.messages)})


class Forbidden(DomainError, PermissionDenied):
    """The actor may not do this (403). Also a Django ``PermissionDenied``, so an HTML view
    that lets it through answers 403 as before."""

    status = 403
    default_code = "permission_denied"
    default_message = "You do not have permission to perform this action."


class NotFound(DomainError):
    status = 404
    default_code = "not_found"
    default_message = "Not found."


class Unavailable(DomainError):
    """A system the action needs (a deployer, a cluster, a load balancer) refused or did not
    answer (502); nothing was changed on Backline's side."""

    status = 502
    default_code = "upstream_error"
    default_message = "A system this action needs did not answer."


class Conflict(DomainError):
    """The object is not in a state that allows this action (409); ``state`` is its state."""

    status = 409
    default_code = "conflict"
    default_message = "The resource is not in a state that allows this action."


def _normalise(errors: dict[str, Any]) -> FieldErrors:
    out: FieldErrors = {}
    for key, value in errors.items():
        if isinstance(value, (list, tuple)):
            out[str(key)] = [str(v) for v in value]
        else:
            out[str(key)] = [str(value)]
    return out


def _first(errors: FieldErrors) -> str:
    for key, msgs in errors.items():
        if msgs:
            return msgs[0] if key == "non_field_errors" else f"{key}: {msgs[0]}"
    return ""
