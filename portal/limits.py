"""Size limits on what people and bots send and store (issue 14).

Two bounds, both documented in the README (*Security model → Limits*):

- **Request bodies**: at most ``DATA_UPLOAD_MAX_MEMORY_SIZE`` bytes (4 MiB) for every request,
  the JSON API included: ``RequestSizeMiddleware`` answers 413 from the declared length, before
  any view, parser or CSRF check reads the body. A view that takes more declares it with
  :func:`body_limit` (the Backstage import, the GitHub webhook).
- **Fields**: every text or JSON field a person or a bot writes has a limit in
  :data:`FIELD_LIMITS` (characters; for JSON, the characters of its compact JSON), and every
  ``CharField`` of those models its ``max_length``. A save over a limit raises
  :class:`~portal.errors.Invalid` naming the field (400 in the API, the form's error on a page)
  from a ``pre_save`` check, so every door (API, page, command, task) gets the same answer and
  nothing is written. Domain functions that parse what they store (pipeline specs) check first
  with :func:`check_value`, so no parsing work is spent on an oversized value.

Fields only Backline itself writes (logs, errors, payloads of deliveries) are bounded where they
are written (``JOB_LOG_MAX_BYTES``, truncation) and are not listed here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from django.db import models
from django.db.models.signals import pre_save

from portal.errors import Invalid

KiB = 2**10
MiB = 2**20
DESCRIPTION_MAX = 20_000
TEXT_MAX = 64 * KiB
SPEC_MAX = 256 * KiB
JSON_SMALL = 16 * KiB
JSON_MAX = 64 * KiB

# "app_label.ModelName" -> {field: the most characters it may hold}
FIELD_LIMITS: dict[str, dict[str, int]] = {
    "portal.ApiToken": {"scopes": 1 * KiB},
    "portal.EventSubscription": {"event_types": 4 * KiB},
    "squads.Tribe": {"description": DESCRIPTION_MAX, "links": JSON_SMALL},
    "squads.Squad": {"mission": DESCRIPTION_MAX, "links": JSON_SMALL},
    "squads.Person": {},  # its CharFields' max_length
    "squads.Domain": {"description": DESCRIPTION_MAX, "tags": JSON_SMALL, "links": JSON_SMALL},
    "squads.System": {"description": DESCRIPTION_MAX, "tags": JSON_SMALL, "links": JSON_SMALL},
    "squads.Service": {
        "description": DESCRIPTION_MAX,
        "links": JSON_SMALL,
        "annotations": JSON_MAX,
        "metrics_urls": JSON_SMALL,
    },
    "squads.Api": {
        "description": DESCRIPTION_MAX,
        "tags": JSON_SMALL,
        "links": JSON_SMALL,
        "definition": 1 * MiB,
    },
    "squads.Resource": {"description": DESCRIPTION_MAX, "tags": JSON_SMALL, "links": JSON_SMALL},
    "pipelines.PipelineConfig": {"spec_yaml": SPEC_MAX},
    "pipelines.PipelineSecret": {"value": TEXT_MAX},
    "infra.Workspace": {"description": DESCRIPTION_MAX, "files": 3 * MiB},  # 2 MiB of text, as JSON
    "infra.Variable": {"value": SPEC_MAX},
    "infra.TerraformRun": {"discard_reason": 2_000},
    "monitoring.AlertRule": {"query": 10_000},
    "releases.Environment": {"driver_config": JSON_SMALL, "strategy": JSON_MAX},
    "releases.StrategyOverride": {"steps": JSON_MAX},
    "releases.AnalysisTemplate": {"description": DESCRIPTION_MAX, "metrics": JSON_MAX},
    "releases.Release": {"strategy": JSON_MAX, "deploy_params": JSON_SMALL},
}


def size_of(value: Any) -> int:
    """Characters of a text value, or of a JSON value written compactly."""
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value)
    return len(json.dumps(value, separators=(",", ":"), default=str))


def _too_long(field: str, size: int, limit: int) -> Invalid:
    return Invalid(
        f"{field} is too long: {size:,} characters, at most {limit:,} allowed.",
        errors={field: f"at most {limit:,} characters allowed (this one has {size:,})"},
    )


def check_value(label: str, field: str, value: Any, *, name: str | None = None) -> None:
    """Raise Invalid (naming ``name`` or ``field``) when ``value`` is over the limit of
    ``label``'s ``field``; before expensive work on the value."""
    limit = FIELD_LIMITS.get(label, {}).get(field)
    if limit is not None and (size := size_of(value)) > limit:
        raise _too_long(name or field, size, limit)


def check_instance(instance: models.Model, fields: Iterable[str] | None = None) -> None:
    """Every limited field of ``instance`` (or those of ``fields``) and every CharField's
    max_length (a DataError, i.e. a 500, otherwise)."""
    limits = FIELD_LIMITS.get(instance._meta.label)
    if limits is None:
        return
    only = None if fields is None else set(fields)
    for f in instance._meta.concrete_fields:
        if only is not None and f.name not in only and f.attname not in only:
            continue
        value = getattr(instance, f.attname, None)
        if f.name in limits:
            if (size := size_of(value)) > limits[f.name]:
                raise _too_long(f.name, size, limits[f.name])
        elif isinstance(f, models.CharField) and f.max_length and isinstance(value, str):
            if len(value) > f.max_length:
                raise _too_long(f.name, len(value), f.max_length)


def _on_pre_save(sender, instance, raw=False, update_fields=None, **kwargs) -> None:
    if not raw:  # loaddata writes fixtures as they are
        check_instance(instance, update_fields)  # a partial save checks what it writes


def connect() -> None:
    """Called from ``PortalConfig.ready()``."""
    pre_save.connect(_on_pre_save, dispatch_uid="portal.limits")


V = TypeVar("V", bound=Callable[..., Any])


def body_limit(max_bytes: int) -> Callable[[V], V]:
    """Let a view (function, or class with ``as_view``) accept bodies up to ``max_bytes``
    instead of ``DATA_UPLOAD_MAX_MEMORY_SIZE``; the view checks what it reads itself."""

    def mark(view: V) -> V:
        view.body_limit = max_bytes  # type: ignore[attr-defined]
        return view

    return mark
