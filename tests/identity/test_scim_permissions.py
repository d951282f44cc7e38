"""The SCIM permission matrix: every SCIM route (scim2-server's routing table, for each resource
type) × every kind of caller, exact codes, and the effect checked (a write that is allowed is
audited with door ``scim``; a refused one changes nothing).

SCIM is not in the OpenAPI schema of ``/api/v1/`` (its payloads are RFC 7643's, served by
scim2-server), so ``tests/test_permission_matrix.py`` cannot see it; this matrix is its
counterpart and ``test_matrix_covers_every_scim_route`` fails on a route without a row.

Callers: ``scim`` (a token with the ``scim`` scope), ``scim_other`` (the same scope on another
squad's token: a SCIM token acts for the whole directory), ``noscope`` (every other scope,
``admin`` included: 403), ``expired`` and ``revoked`` scim tokens, ``bad`` (an unknown token),
``anon``, and ``admin_session`` (an org admin's browser session: SCIM takes tokens only).
"""

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from scim2_server.routing import ROUTES

from identity.models import DirectoryGroup, DirectoryUser
from portal.models import SCOPE_NAMES, ApiToken, AuditEvent
from tests.identity.scim_helpers import ERROR_SCHEMA, GROUP_SCHEMA, USER_SCHEMA, patch

CALLERS = ["scim", "scim_other", "noscope", "expired", "revoked", "bad", "anon", "admin_session"]
USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def _user(w):
    return w.user().pk


def _group(w):
    return w.group().pk


class World:
    def __init__(self, squad):
        self.squad = squad
        self.n = 0

    def user(self):
        from identity.scim.services import provision_directory_user
        from portal.actors import Actor

        self.n += 1
        doc = {"schemas": [USER_SCHEMA], "userName": f"m{self.n}@example.com", "active": True}
        return provision_directory_user(doc, actor=Actor.system("setup"))

    def group(self):
        from identity.scim.services import create_directory_group
        from portal.actors import Actor

        self.n += 1
        doc = {"schemas": [GROUP_SCHEMA], "displayName": f"g{self.n}"}
        return create_directory_group(doc, [self.user().pk], actor=Actor.system("setup"))


def _body(endpoint, w):
    if endpoint == "Users":
        return {"schemas": [USER_SCHEMA], "userName": "new@example.com"}
    return {"schemas": [GROUP_SCHEMA], "displayName": "playback", "members": [{"value": _user(w)}]}


def _patch(endpoint):
    if endpoint == "Users":
        return patch({"op": "replace", "path": "active", "value": False})
    return patch({"op": "replace", "path": "displayName", "value": "renamed"})


SEARCH = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "count": 5}

# "METHOD pattern" (scim2-server's) -> (path maker, body maker, allowed status, writes)
ROWS = {
    "GET /ServiceProviderConfig": (lambda w: "ServiceProviderConfig", None, 200, False),
    "GET /ResourceTypes": (lambda w: "ResourceTypes", None, 200, False),
    "GET /ResourceTypes/{resource_id}": (lambda w: "ResourceTypes/User", None, 200, False),
    "GET /Schemas": (lambda w: "Schemas", None, 200, False),
    "GET /Schemas/{resource_id}": (lambda w: f"Schemas/{USER}", None, 200, False),
    "POST /Bulk": (lambda w: "Bulk", lambda w: {"Operations": []}, 501, False),
    "GET /Me": (lambda w: "Me", None, 501, False),
    "PUT /Me": (lambda w: "Me", lambda w: _body("Users", w), 501, False),
    "PATCH /Me": (lambda w: "Me", lambda w: _patch("Users"), 501, False),
    "DELETE /Me": (lambda w: "Me", None, 501, False),
    "POST /Me": (lambda w: "Me", lambda w: _body("Users", w), 501, False),
    "GET /": (lambda w: "", None, 200, False),
    "POST /.search": (lambda w: ".search", lambda w: SEARCH, 200, False),
}
for _ep, _make in (("Users", _user), ("Groups", _group)):
    ROWS |= {
        f"POST /{{endpoint}}/.search [{_ep}]": (lambda w, e=_ep: f"{e}/.search", lambda w: SEARCH, 200, False),
        f"GET /{{endpoint}} [{_ep}]": (lambda w, e=_ep: e, None, 200, False),
        f"POST /{{endpoint}} [{_ep}]": (lambda w, e=_ep: e, lambda w, e=_ep: _body(e, w), 201, True),
        f"GET /{{endpoint}}/{{resource_id}} [{_ep}]": (lambda w, e=_ep, m=_make: f"{e}/{m(w)}", None, 200, False),
        f"PUT /{{endpoint}}/{{resource_id}} [{_ep}]": (
            lambda w, e=_ep, m=_make: f"{e}/{m(w)}", lambda w, e=_ep: _body(e, w), 200, True),
        f"PATCH /{{endpoint}}/{{resource_id}} [{_ep}]": (
            lambda w, e=_ep, m=_make: f"{e}/{m(w)}", lambda w, e=_ep: _patch(e), 200, True),
        f"DELETE /{{endpoint}}/{{resource_id}} [{_ep}]": (
            lambda w, e=_ep, m=_make: f"{e}/{m(w)}", None, 204, True),
    }  # fmt: skip
PUBLIC = {"GET /ServiceProviderConfig"}  # RFC 7644 §4: no authentication


def expected(key, caller):
    ok, writes = ROWS[key][2], ROWS[key][3]
    if key in PUBLIC:
        return ok, False
    if caller in ("scim", "scim_other"):
        return ok, writes
    if caller == "noscope":
        return 403, False
    return 401, False


def client_for(caller, squad, other_squad, admin_user):
    if caller == "admin_session":
        c = Client()
        c.force_login(admin_user)
        return c
    if caller == "anon":
        return Client()
    if caller == "bad":
        return Client(HTTP_AUTHORIZATION="Bearer bl_not-a-token")
    scopes = ["scim"] if caller != "noscope" else [s for s in SCOPE_NAMES if s != "scim"]
    token, raw = ApiToken.generate(
        squad=other_squad if caller == "scim_other" else squad,
        name=f"m-{caller}",
        scopes=scopes,
        expires_at=timezone.now() - timedelta(minutes=1) if caller == "expired" else None,
    )
    if caller == "revoked":
        ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}")


def _state():
    return (
        AuditEvent.objects.filter(door="scim").count(),
        list(DirectoryUser.objects.order_by("pk").values_list("pk", "version", "person__active")),
        list(DirectoryGroup.objects.order_by("pk").values_list("pk", "version", "display_name")),
    )


CASES = [(k, c) for k in ROWS for c in CALLERS]


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.mark.parametrize("key,caller", CASES, ids=[f"{k} | {c}" for k, c in CASES])
def test_scim_permission_matrix(key, caller, squad, other_squad, admin_user):
    w = World(squad)
    make_path, make_body, _, _ = ROWS[key]
    path = make_path(w)
    body = make_body(w) if make_body else None
    client = client_for(caller, squad, other_squad, admin_user)
    before = _state()
    method = key.split(" ", 1)[0]
    resp = client.generic(
        method,
        f"/scim/v2/{path}",
        json.dumps(body) if body is not None else "",
        content_type="application/scim+json",
    )
    want, effect = expected(key, caller)
    assert resp.status_code == want, f"{key} as {caller}: {resp.status_code}\n{resp.content[:400]}"
    if want >= 400:
        data = json.loads(resp.content)
        assert data["schemas"] == [ERROR_SCHEMA] and data["status"] == str(want), data
        assert resp["Content-Type"].startswith("application/scim+json")
    if want == 401:
        assert resp["WWW-Authenticate"].startswith("Bearer")
    after = _state()
    assert (after != before) == effect, f"{key} as {caller}: effect {after != before}"
    if effect:
        assert after[0] > before[0], "an allowed write is audited with door scim"


def _routes(patterns, prefix=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _routes(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern)


def test_matrix_covers_every_scim_route():
    keys = set()
    for route in ROUTES:
        key = f"{route.method} {route.pattern}"
        if "{endpoint}" in route.pattern:
            keys |= {f"{key} [Users]", f"{key} [Groups]"}
        else:
            keys.add(key)
    assert keys == set(ROWS), sorted(keys ^ set(ROWS))
    scim_routes = [r for r in _routes(get_resolver().url_patterns) if "scim" in r]
    assert scim_routes == [r"^scim/v2/?(?P<rest>[\s\S]*?)/?\Z"], (
        scim_routes
    )  # one door, the one above


def test_directory_sync_page_is_for_org_admins(client, alice, admin_user):
    assert client.get("/directory/sync/").status_code == 302  # anonymous: to the sign-in page
    client.force_login(alice)
    assert client.get("/directory/sync/").status_code == 403
    assert b"Directory sync" not in client.get("/").content  # no nav link either
    client.force_login(admin_user)
    page = client.get("/directory/sync/")
    assert page.status_code == 200 and b"Recent calls" in page.content
    assert b'href="/directory/sync/"' in client.get("/").content
