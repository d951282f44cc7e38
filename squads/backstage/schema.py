"""Backstage's own JSON Schemas (``schema/``, from ``@backstage/catalog-model``): every entity
is validated against the envelope, the entity shape and its kind's schema, as Backstage does."""

import copy
import functools
import hashlib
import json
from pathlib import Path

import jsonschema_rs
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

SCHEMA_DIR = Path(__file__).with_name("schema")


@functools.cache
def _schemas():
    """``$id`` → schema, and (kind lower, version, spec.type or None) → ``$id``."""
    by_id, by_kind = {}, {}
    for path in sorted(SCHEMA_DIR.rglob("*.schema.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        by_id[schema["$id"]] = schema
        if path.parent.name == "kinds":
            parts = path.name.removesuffix(".schema.json").split(".", 2)
            kind, version = parts[0].lower(), parts[1]
            by_kind[(kind, version, parts[2] if len(parts) > 2 else None)] = schema["$id"]
    return by_id, by_kind


@functools.cache
def _validator(schema_id):
    by_id, _ = _schemas()
    registry = Registry().with_resources(
        (sid, Resource.from_contents(s, default_specification=DRAFT7)) for sid, s in by_id.items()
    )
    return Draft7Validator(by_id[schema_id], registry=registry)


_RS_BASE = "https://schemas.backstage.invalid/"  # jsonschema-rs wants absolute $ids


def _rebased(schema):
    out = copy.deepcopy(schema)
    out["$id"] = _RS_BASE + schema["$id"]
    return out


@functools.cache
def _fast_validator(schema_id):
    """The same schema compiled by jsonschema-rs: a yes/no answer about 25× faster. Only a
    "valid" is taken from it; any other verdict is explained by the reference validator."""
    by_id, _ = _schemas()
    registry = jsonschema_rs.Registry([(_RS_BASE + sid, _rebased(s)) for sid, s in by_id.items()])
    return jsonschema_rs.Draft7Validator(_rebased(by_id[schema_id]), registry=registry)


def _kind_schema(data):
    _, by_kind = _schemas()
    kind = str(data.get("kind", "")).lower()
    version = str(data.get("apiVersion", "")).rsplit("/", 1)[-1]
    spec = data.get("spec")
    spec_type = spec.get("type") if isinstance(spec, dict) else None
    if not isinstance(spec_type, str):
        spec_type = None  # a list or mapping there is the schema's to refuse, not a 500 here
    for v in (version, "v1alpha1"):  # v1beta1 shares the v1alpha1 schemas
        for key in ((kind, v, spec_type), (kind, v, None)):
            if key in by_kind:
                return by_kind[key]
    return None


def _path(error):
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _message(error):
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return _join(_path(error), missing), "is required"
    if error.validator == "additionalProperties":
        return _path(error), error.message
    return _path(error), error.message if len(error.message) < 300 else error.message[:300] + "…"


def _join(path, key):
    return f"{path}.{key}" if path else key


_RESULTS: dict[bytes, list] = {}  # digest of the document JSON → problems
_RESULTS_MAX = 100_000


def validate_document(data, text) -> list[tuple[str, str]]:
    """``validate_entity`` for a document whose JSON text is ``text``, remembered per process
    (by digest): the same document always gets the same answer, and registered locations are
    mostly re-imported unchanged."""
    key = hashlib.blake2b(text.encode(), digest_size=16).digest()
    found = _RESULTS.get(key)
    if found is None:
        found = validate_entity(data_for_schema(data))
        if len(_RESULTS) >= _RESULTS_MAX:
            _RESULTS.clear()
        _RESULTS[key] = found
    return found


def _fast_valid(ids, data) -> bool:
    try:
        return all(_fast_validator(sid).is_valid(data) for sid in ids)
    except (ValueError, TypeError):  # not JSON-shaped (YAML dates, integer keys): ask jsonschema
        return False


def schema_ids(data) -> list[str]:
    """The schemas ``data`` is checked against: a kind's schema includes Entity (and so
    EntityMeta); the envelope and Entity alone for other kinds."""
    kind_id = _kind_schema(data)
    return [kind_id] if kind_id else ["EntityEnvelope", "Entity"]


def validate_entity(data) -> list[tuple[str, str]]:
    """``[(field, message)]``: what Backstage's schemas refuse in ``data`` (an entity mapping)."""
    ids = schema_ids(data)
    if _fast_valid(ids, data):
        return []
    return reference_errors(data, ids)


def reference_errors(data, ids=None) -> list[tuple[str, str]]:
    """``validate_entity`` by the reference validator alone (every problem, with its path)."""
    errors = []
    seen = set()
    for sid in ids or schema_ids(data):
        for error in sorted(_validator(sid).iter_errors(data), key=lambda e: list(e.path)):
            item = _message(error)
            if item not in seen:
                seen.add(item)
                errors.append(item)
    return errors


PLACEHOLDERS = ("$text", "$json", "$yaml", "$openapi", "$asyncapi")


def is_placeholder(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in PLACEHOLDERS


def data_for_schema(data):
    """Backstage validates after substituting placeholders: a placeholder counts as a string
    here (reading it, and what it may name, is checked when it is resolved)."""
    spec = data.get("spec")
    if not isinstance(spec, dict) or not any(is_placeholder(v) for v in spec.values()):
        return data
    return {
        **data,
        "spec": {k: "placeholder" if is_placeholder(v) else v for k, v in spec.items()},
    }
