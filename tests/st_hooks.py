"""Schemathesis hooks for the API fuzz run (``SCHEMATHESIS_HOOKS=tests.st_hooks``).

* ``GET /api/v1/catalog/export`` answers multi-document Backstage YAML (``application/yaml``),
  documented as ``type: string``. Schemathesis' built-in YAML deserializer reads one document
  only and fails on the second. This one checks every document parses (``safe_load_all``) and
  hands the body on as the string the schema describes.
* Path parameters: random slugs and ids almost always 404, so half of the cases get an id that
  exists (``BACKLINE_FUZZ_IDS``: JSON, collection name -> values), so bodies and actions reach
  the domain code; the token the run uses (``BACKLINE_FUZZ_TOKEN_ID``) is never revoked.
"""

import json
import os
import random
import re

import schemathesis
import yaml
from schemathesis.core.media_types import YAML_MEDIA_TYPES

KNOWN = json.loads(os.environ.get("BACKLINE_FUZZ_IDS") or "{}")
PROTECTED_TOKEN = os.environ.get("BACKLINE_FUZZ_TOKEN_ID")
_rng = random.Random(7)


@schemathesis.deserializer(*YAML_MEDIA_TYPES)
def multi_document_yaml(ctx, response):
    text = response.content.decode(response.encoding or "utf-8")
    list(yaml.safe_load_all(text))  # raises on malformed YAML
    return text


def _collection(path, param):
    """'/api/v1/services/{slug}/pipeline-secrets/{name}/', 'name' -> 'pipeline-secrets'."""
    m = re.search(r"/([^/{}]+)/\{" + re.escape(param) + r"\}", path)
    return m.group(1) if m else None


@schemathesis.hook
def before_call(context, case, kwargs):
    path = case.operation.path
    params = case.path_parameters
    if not params:
        return
    for name in list(params):
        values = KNOWN.get(_collection(path, name) or "")
        if values and _rng.random() < 0.5:
            params[name] = _rng.choice(values)
    if (
        PROTECTED_TOKEN
        and path.endswith("/tokens/{id}/revoke/")
        and str(params.get("id")) == PROTECTED_TOKEN
    ):
        params["id"] = 0
