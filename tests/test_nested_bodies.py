"""No request body, however nested or large, answers 500: a ~2 KB body nested 1,000 levels deep
and a ~1 MB one (every string of the endpoint's own body made 100,000 characters long, plus
thousands of extra keys) go to EVERY POST/PUT/PATCH endpoint, API and HTML, as an org admin's
session with a valid CSRF token and (API) as an org-admin token. The endpoints and the objects
they act on come from the permission matrix, whose own tests prove that it covers every mutating
operation of the OpenAPI schema and every HTML route accepting POST; this module checks again."""

import json

import pytest
from django.middleware.csrf import _get_new_csrf_string
from rest_framework.test import APIClient

from portal.models import SCOPE_NAMES, ApiToken
from tests import test_permission_matrix as matrix

HTML_EXEMPT, ROWS = matrix.HTML_EXEMPT, matrix.ROWS
# the matrix's fixtures: its objects (written once for the module), its fast password hasher
pristine_world, world = matrix.pristine_world, matrix.world
fast_passwords = matrix.fast_passwords

DEEP_JSON = b'{"a":' * 1000 + b"1" + b"}" * 1000
DEEP_YAML = b"a: " + b"[" * 1000 + b"]" * 1000 + b"\n"
DEEP_TEXT = "[" * 1000 + "]" * 1000
LONG = "x" * 100_000
WRITES = ("post", "put", "patch")
KEYS = sorted(k for k in ROWS if ROWS[k].method in WRITES)


def enlarged(value):
    """The endpoint's own body with every string 100,000 characters long."""
    if isinstance(value, dict):
        return {k: enlarged(v) for k, v in value.items()}
    if isinstance(value, list):
        return [enlarged(v) for v in value]
    return LONG if isinstance(value, str) else value


def huge_json(data) -> bytes:
    body = enlarged(data) if isinstance(data, dict) else {"value": LONG}
    body.update({f"extra{i}": [i, {"k": "v" * 50}] for i in range(10_000)})
    return json.dumps(body).encode()


def admin_session(w):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(w.users["admin"])
    secret = _get_new_csrf_string()
    client.cookies["csrftoken"] = secret
    client.defaults["HTTP_X_CSRFTOKEN"] = secret
    return client


def admin_token(w):
    _, raw = ApiToken.generate(squad=w.squad, name="nested", scopes=list(SCOPE_NAMES))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def assert_no_500(resp, what):
    assert resp.status_code < 500, f"{what}: {resp.status_code}\n{resp.content[:400]!r}"
    if resp.status_code == 400 and resp["Content-Type"].startswith("application/json"):
        body = resp.json()
        assert body.get("code") and body.get("message"), f"{what}: {body}"


def _api(row, url, data, client, who):
    method = row.method.upper()
    bodies = [
        ("deep JSON", DEEP_JSON, "application/json"),
        ("huge JSON", huge_json(data), "application/json"),
    ]
    if row.fmt == "yaml":
        huge_yaml = (data if isinstance(data, str) else "") + f"x: {LONG}\n" * 10
        bodies += [
            ("deep YAML", DEEP_YAML, "application/yaml"),
            ("huge YAML", huge_yaml.encode(), "application/yaml"),
        ]
    for what, body, ctype in bodies:
        resp = client.generic(method, url, body, content_type=ctype)
        assert_no_500(resp, f"{row.key} as {who}, {what}")
        if what == "deep JSON" and resp.status_code == 400:
            assert resp.json()["code"] == "too_complex", resp.json()


def _html(row, url, data, client):
    fields = dict(data or {}) or {"value": ""}
    for what, value in (("deep", DEEP_TEXT), ("huge", LONG * 10)):
        resp = client.post(url, {k: value for k in fields})
        assert_no_500(resp, f"{row.key}, {what} form fields")
    resp = client.generic("POST", url, DEEP_JSON, content_type="application/json")
    assert_no_500(resp, f"{row.key}, deep JSON body")


@pytest.mark.parametrize("key", KEYS)
def test_no_body_answers_500(world, key):
    row = ROWS[key]
    url, data = row.make(world)
    if row.html:
        _html(row, url, data, admin_session(world))
        return
    _api(row, url, data, admin_session(world), "admin session")
    _api(row, url, data, admin_token(world), "admin token")


@pytest.mark.parametrize("route", sorted(HTML_EXEMPT))
def test_no_body_answers_500_on_the_exempt_routes(db, route):
    url = "/" + route.split(" ", 1)[1]
    client = APIClient()
    for body, ctype in (
        (DEEP_JSON, "application/json"),
        (DEEP_JSON, "application/x-www-form-urlencoded"),
    ):
        assert_no_500(client.generic("POST", url, body, content_type=ctype), f"{route}")


def test_every_write_endpoint_is_covered():
    api = {op for op in matrix._schema_operations() if op.split(" ")[0].lower() in WRITES}
    html = matrix._html_post_routes()
    missing = sorted((api | html) - set(KEYS) - set(HTML_EXEMPT))
    assert not missing, missing
    assert len(api) > 30 and len(html) > 20  # the walk found the URLconf
