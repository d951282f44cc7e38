"""The SCIM endpoints through Django's test client: the quirks of real directories, filters and
pages, versions, and every bad input answered with a SCIM error (never a 500, never half done)."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.core.management import CommandError, call_command
from django.test import Client

from identity.models import DirectoryGroup, DirectoryUser, ScimCall
from portal import services as portal_services
from portal.actors import Actor
from portal.errors import Forbidden
from portal.models import ApiToken, AuditEvent
from squads.models import Membership, Person
from tests.identity.scim_helpers import (
    ERROR_SCHEMA,
    GROUP_SCHEMA,
    USER_SCHEMA,
    patch,
    scim_token,
)

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


class Scim:
    def __init__(self, raw):
        self.c = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")

    def __call__(self, method, path, body=None, **extra):
        data = body if isinstance(body, str | bytes) else json.dumps(body) if body else ""
        resp = self.c.generic(
            method, f"/scim/v2/{path}", data, content_type="application/scim+json", **extra
        )
        resp.data = json.loads(resp.content) if resp.content else None
        return resp


@pytest.fixture
def scim(squad):
    return Scim(scim_token(squad))


def user_body(user_name="kim@example.com", **extra):
    return {"schemas": [USER_SCHEMA], "userName": user_name, "active": True, **extra}


def make_user(scim, user_name="kim@example.com", **extra):
    resp = scim("POST", "Users", user_body(user_name, **extra))
    assert resp.status_code == 201, resp.data
    return resp.data


def assert_scim_error(resp, status, scim_type=None):
    assert resp.status_code == status, (resp.status_code, resp.content[:400])
    assert resp["Content-Type"].startswith("application/scim+json")
    assert resp.data["schemas"] == [ERROR_SCHEMA]
    assert resp.data["status"] == str(status)
    if scim_type:
        assert resp.data.get("scimType") == scim_type, resp.data


# --- discovery ----------------------------------------------------------------------------------
def test_discovery_endpoints(scim):
    spc = scim("GET", "ServiceProviderConfig")
    assert spc.status_code == 200 and spc["Content-Type"] == "application/scim+json"
    assert spc.data["patch"]["supported"] and spc.data["filter"]["supported"]
    assert spc.data["etag"]["supported"] and not spc.data["bulk"]["supported"]
    assert spc.data["authenticationSchemes"][0]["type"] == "oauthbearertoken"
    names = {r["name"] for r in scim("GET", "ResourceTypes").data["Resources"]}
    assert names == {"User", "Group"}
    ids = {s["id"] for s in scim("GET", "Schemas").data["Resources"]}
    assert {USER_SCHEMA, GROUP_SCHEMA, ENTERPRISE} <= ids
    assert scim("GET", f"Schemas/{USER_SCHEMA}").data["name"] == "User"
    assert_scim_error(scim("GET", "Nothing/here"), 404)


# --- users --------------------------------------------------------------------------------------
def test_create_read_replace_user(scim):
    u = make_user(scim, name={"givenName": "Kim", "familyName": "Wexler"}, externalId="x1",
                  emails=[{"value": "kim@work.example", "type": "work", "primary": True}])  # fmt: skip
    assert u["meta"]["resourceType"] == "User" and u["meta"]["version"] == 'W/"1"'
    assert u["meta"]["location"].endswith(f"/scim/v2/Users/{u['id']}")
    person = Person.objects.get(directory_user__id=u["id"])
    assert (person.name, person.email, person.slug) == ("Kim Wexler", "kim@work.example", "kim")
    got = scim("GET", f"Users/{u['id']}")
    assert got.status_code == 200 and got["ETag"] == 'W/"1"'
    put = scim("PUT", f"Users/{u['id']}", user_body(displayName="K. Wexler", externalId="x1"))
    assert put.status_code == 200 and put.data["meta"]["version"] == 'W/"2"'
    person.refresh_from_db()
    assert person.name == "K. Wexler" and person.email == "kim@example.com"
    assert "emails" not in put.data  # a PUT replaces the whole document


def test_user_name_unique_case_insensitively_and_required(scim):
    make_user(scim)
    assert_scim_error(scim("POST", "Users", user_body("KIM@example.com")), 409, "uniqueness")
    assert_scim_error(scim("POST", "Users", {"schemas": [USER_SCHEMA]}), 400)
    assert DirectoryUser.objects.count() == 1


def test_existing_local_account_is_adopted_but_not_a_superuser(scim, alice, admin_user):
    u = make_user(scim, "alice")
    assert Person.objects.get(directory_user__id=u["id"]).user == alice
    assert alice.person.directory_user.id == u["id"]
    refused = scim("POST", "Users", user_body("admin"))
    assert_scim_error(refused, 409, "uniqueness")
    assert "superuser" in refused.data["detail"]
    admin_user.refresh_from_db()
    assert admin_user.is_active


def test_entra_patch_quirks(scim):
    u = make_user(scim, emails=[{"value": "a@x.example", "type": "work", "primary": True}])
    ops = patch(
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "b@x.example"},
        {"op": "Replace", "path": "name.givenName", "value": "Kimberly"},
        {"op": "Add", "path": f"{ENTERPRISE}:department", "value": "Legal"},
        {"op": "Replace", "path": "externalId", "value": "ext-9"},
    )
    resp = scim("PATCH", f"Users/{u['id']}", ops)
    assert resp.status_code == 200, resp.data
    assert resp.data["emails"][0]["value"] == "b@x.example"
    assert resp.data[ENTERPRISE]["department"] == "Legal"
    person = Person.objects.get(directory_user__id=u["id"])
    assert (person.email, person.name, person.external_id) == ("b@x.example", "Kimberly", "ext-9")


@pytest.mark.parametrize(
    "ops,scim_type",
    [
        (patch({"op": "jump", "path": "active", "value": False}), None),
        (patch({"op": "replace", "path": 'emails[type eq "work"', "value": 1}), "invalidPath"),
        (patch({"op": "replace", "path": "active", "value": "maybe"}), None),
        ({"Operations": []}, None),
        ("{not json", None),
    ],
)
def test_bad_patch_is_a_scim_400_and_changes_nothing(scim, ops, scim_type):
    u = make_user(scim)
    audit_before = AuditEvent.objects.count()
    resp = scim("PATCH", f"Users/{u['id']}", ops)
    assert_scim_error(resp, 400, scim_type)
    assert resp.data["detail"]
    assert AuditEvent.objects.count() == audit_before
    assert DirectoryUser.objects.get(pk=u["id"]).version == 1


@pytest.mark.parametrize(
    "body,where",
    [
        (user_body("x" * 256), "userName"),
        (user_body(externalId="e" * 300), "externalId"),
        (user_body("nul\u0000@example.com"), "NUL"),
    ],
)
def test_values_backline_cannot_keep_are_refused_by_name(scim, body, where):
    resp = scim("POST", "Users", body)
    assert_scim_error(resp, 400, "invalidValue")
    assert where in resp.data["detail"]
    assert not DirectoryUser.objects.exists()
    nul = scim.c.get("/scim/v2/Users", {"filter": 'userName eq "a\x00"'})
    assert nul.status_code == 400 and "U+0000" in json.loads(nul.content)["detail"]


def test_if_match_with_a_stale_version_is_412(scim):
    u = make_user(scim)
    resp = scim("PUT", f"Users/{u['id']}", user_body(displayName="x"), HTTP_IF_MATCH='W/"7"')
    assert_scim_error(resp, 412)
    ok = scim("PUT", f"Users/{u['id']}", user_body(displayName="x"), HTTP_IF_MATCH='W/"1"')
    assert ok.status_code == 200
    assert scim("GET", f"Users/{u['id']}", HTTP_IF_NONE_MATCH='W/"2"').status_code == 304


# --- filters and pages --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "flt,expected",
    [
        ('userName eq "B@example.com"', ["b"]),
        ('externalId eq "e-c"', ["c"]),
        ('externalId eq "E-C"', []),  # externalId is caseExact
        ('userName sw "a" or userName sw "c"', ["a", "c"]),
        ('userName co "example" and active eq false', ["c"]),
        ('not (userName eq "a@example.com")', ["b", "c"]),
        ('emails.value ew "@b.example"', ["b"]),  # not a column: evaluated by scim2-models
        ('name.familyName eq "Cee"', ["c"]),
        ('emails[type eq "work" and value co "@a."]', ["a"]),
        ("externalId pr", ["a", "b", "c"]),
        ('meta.lastModified gt "2000-01-01T00:00:00Z"', ["a", "b", "c"]),
        ('unknownAttr eq "x"', None),
        ("userName eq", None),
    ],
)
def test_user_filters(scim, flt, expected):
    for who in "abc":
        make_user(scim, f"{who}@example.com", externalId=f"e-{who}", active=who != "c",
                  name={"familyName": who.title() + "ee" if who == "c" else who},
                  emails=[{"value": f"{who}@{who}.example", "type": "work"}])  # fmt: skip
    resp = scim.c.get("/scim/v2/Users", {"filter": flt})
    data = json.loads(resp.content)
    if expected is None:
        assert resp.status_code == 400 and data["scimType"] == "invalidFilter", data
        return
    assert resp.status_code == 200, data
    got = sorted(r["userName"][0] for r in data["Resources"])
    assert got == expected and data["totalResults"] == len(expected)


def test_pagination(scim):
    for i in range(7):
        make_user(scim, f"p{i}@example.com")
    page = json.loads(scim.c.get("/scim/v2/Users", {"startIndex": 3, "count": 2}).content)
    assert (page["totalResults"], page["startIndex"], page["itemsPerPage"]) == (7, 3, 2)
    assert [r["userName"] for r in page["Resources"]] == ["p2@example.com", "p3@example.com"]
    last = json.loads(scim.c.get("/scim/v2/Users", {"startIndex": 7, "count": 5}).content)
    assert [r["userName"] for r in last["Resources"]] == ["p6@example.com"]
    none = json.loads(scim.c.get("/scim/v2/Users", {"count": 0}).content)
    assert none["totalResults"] == 7 and none.get("Resources", []) == []
    bad = scim.c.get("/scim/v2/Users", {"startIndex": "x"})
    assert bad.status_code == 400


# --- groups -------------------------------------------------------------------------------------
def test_group_members_follow_squads_and_keep_manual(scim, squad, other_squad):
    a, b = make_user(scim, "a@example.com"), make_user(scim, "b@example.com")
    pa = Person.objects.get(directory_user__id=a["id"])
    Membership.objects.create(person=pa, squad=squad, role="lead")  # manual, stays manual
    g = scim("POST", "Groups", {"schemas": [GROUP_SCHEMA], "displayName": "group:default/search",
                                "members": [{"value": a["id"]}, {"value": b["id"]}]})  # fmt: skip
    assert g.status_code == 201, g.data
    assert {m["value"] for m in g.data["members"]} == {a["id"], b["id"]}
    assert Membership.objects.filter(squad=other_squad, source="directory").count() == 2
    # rename to the squad the manual membership is in: no takeover, the role stays
    r = scim("PATCH", f"Groups/{g.data['id']}",
             patch({"op": "replace", "path": "displayName", "value": "playback"}))  # fmt: skip
    assert r.status_code == 200, r.data
    assert not Membership.objects.filter(squad=other_squad).exists()
    lead = Membership.objects.get(person=pa, squad=squad)
    assert (lead.source, lead.role) == ("manual", "lead")
    assert Membership.objects.filter(squad=squad, source="directory").count() == 1  # b
    assert scim("GET", f"Users/{a['id']}").data["groups"][0]["display"] == "playback"
    assert scim("DELETE", f"Groups/{g.data['id']}").status_code == 204
    assert not Membership.objects.filter(source="directory").exists()
    assert Membership.objects.filter(person=pa, squad=squad).exists()


def test_group_with_unknown_or_nested_members_is_refused_whole(scim):
    a = make_user(scim)
    outer = scim("POST", "Groups", {"schemas": [GROUP_SCHEMA], "displayName": "outer"})
    bad = scim("POST", "Groups", {"schemas": [GROUP_SCHEMA], "displayName": "playback",
                                  "members": [{"value": a["id"]}, {"value": "nope"}]})  # fmt: skip
    assert_scim_error(bad, 400, "invalidValue")
    assert "nope" in bad.data["detail"]
    nested = scim("PATCH", f"Groups/{outer.data['id']}", patch(
        {"op": "add", "path": "members", "value": [{"value": outer.data["id"]}]}))  # fmt: skip
    assert_scim_error(nested, 400, "invalidValue")
    assert DirectoryGroup.objects.count() == 1 and not Membership.objects.exists()
    assert_scim_error(scim("POST", "Groups", {"schemas": [GROUP_SCHEMA]}), 400)


def test_group_filters(scim):
    for name in ("Eng Playback", "eng search"):
        scim(
            "POST",
            "Groups",
            {"schemas": [GROUP_SCHEMA], "displayName": name, "externalId": name[:3]},
        )
    got = json.loads(
        scim.c.get("/scim/v2/Groups", {"filter": 'displayName eq "eng playback"'}).content
    )
    assert [r["displayName"] for r in got["Resources"]] == ["Eng Playback"]
    excl = json.loads(scim.c.get("/scim/v2/Groups", {"excludedAttributes": "members"}).content)
    assert excl["totalResults"] == 2


# --- the call log -------------------------------------------------------------------------------
def test_every_call_is_logged_with_its_error(scim):
    make_user(scim)
    scim("POST", "Users", user_body())
    calls = list(ScimCall.objects.order_by("id"))
    assert [(c.method, c.status) for c in calls] == [("POST", 201), ("POST", 409)]
    assert calls[1].scim_type == "uniqueness" and "already taken" in calls[1].error
    assert calls[1].token_label == "directory@playback"


# --- tokens -------------------------------------------------------------------------------------
def test_create_token_knows_the_scim_scope(squad, capsys):
    call_command("create_token", "--squad", "playback", "--scopes", "scim", "--name", "okta")
    raw = capsys.readouterr().out.strip().splitlines()[-1]
    assert ApiToken.objects.get(name="okta").scopes == ["scim"]
    assert Scim(raw)("GET", "Users").status_code == 200
    with pytest.raises(CommandError, match="Unknown scope"):
        call_command("create_token", "--squad", "playback", "--scopes", "scimm")


def test_only_org_admins_may_grant_the_scim_scope(squad, alice, admin_user):
    with pytest.raises(Forbidden, match="scim"):
        portal_services.create_token(squad, actor=Actor(user=alice), name="x", scopes=["scim"])
    token, _ = portal_services.create_token(
        squad, actor=Actor(user=admin_user), name="x", scopes=["scim"]
    )
    assert token.scopes == ["scim"]


def test_deactivated_users_cannot_sign_in_with_a_session_made_before(scim, client):
    u = make_user(scim, "lee@example.com")
    user = get_user_model().objects.get(username="lee@example.com")
    client.force_login(user)  # force_login fires user_logged_in: the session is indexed
    assert client.get("/").status_code == 200
    scim("PATCH", f"Users/{u['id']}", patch({"op": "replace", "path": "active", "value": False}))
    assert client.get("/").status_code == 302


def test_deleting_a_user_signs_them_out_everywhere(scim, client, squad):
    """DELETE /Users/<id> of someone signed in: every session of theirs is deleted from the
    store, the tokens they made are revoked, directory memberships go, all audited."""
    u = make_user(scim, "lee@example.com")
    user = get_user_model().objects.get(username="lee@example.com")
    client.force_login(user)
    session_key = client.session.session_key
    assert client.get("/").status_code == 200
    token, raw = ApiToken.generate(squad=squad, name="laptop", scopes=[], created_by=user)
    g = scim("POST", "Groups", {"schemas": [GROUP_SCHEMA], "displayName": "playback",
                                "members": [{"value": u["id"]}]})  # fmt: skip
    assert g.status_code == 201, g.data
    person = Person.objects.get(directory_user__id=u["id"])
    assert Membership.objects.filter(person=person, source="directory").count() == 1

    assert scim("DELETE", f"Users/{u['id']}").status_code == 204
    assert not Session.objects.filter(session_key=session_key).exists()
    assert client.get("/").status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    api = Client(HTTP_AUTHORIZATION=f"Bearer {raw}").get("/api/v1/me/")
    assert api.status_code == 401
    person.refresh_from_db()
    assert person.active is False and not person.memberships.exists()
    assert scim("GET", f"Users/{u['id']}").status_code == 404
    assert scim("GET", f"Groups/{g.data['id']}").data.get("members") is None
    signed_out = AuditEvent.objects.get(door="scim", action="person.sign_out")
    assert signed_out.data == {
        "sessions": 1, "tokens_revoked": 1, "reason": "deleted by the directory",
    }  # fmt: skip
    actions = set(AuditEvent.objects.filter(door="scim").values_list("action", flat=True))
    assert {"person.deprovision", "token.revoke", "membership.delete"} <= actions


def test_entra_removes_members_by_value_and_okta_puts_the_whole_group(scim, squad):
    a, b = make_user(scim, "a@example.com"), make_user(scim, "b@example.com")
    g = scim("POST", "Groups", {"schemas": [GROUP_SCHEMA], "displayName": "playback",
                                "members": [{"value": a["id"]}, {"value": b["id"]}]})  # fmt: skip
    gid = g.data["id"]
    # Entra: "Remove" on members with the members to remove as the value
    r = scim("PATCH", f"Groups/{gid}",
             patch({"op": "Remove", "path": "members", "value": [{"value": a["id"]}]}))  # fmt: skip
    assert r.status_code == 200, r.data
    assert [m["value"] for m in r.data["members"]] == [b["id"]]
    # Okta (group push): PUT with the whole membership
    r = scim("PUT", f"Groups/{gid}", {"schemas": [GROUP_SCHEMA], "displayName": "playback",
                                      "members": [{"value": a["id"]}]})  # fmt: skip
    assert r.status_code == 200, r.data
    assert [m["value"] for m in r.data["members"]] == [a["id"]]
    assert set(Membership.objects.filter(squad=squad).values_list("person__directory_user__id",
                                                                  flat=True)) == {a["id"]}  # fmt: skip


def test_reactivation_lets_the_person_back_in(scim):
    u = make_user(scim, "back@example.com")
    off = scim("PATCH", f"Users/{u['id']}", patch({"op": "replace", "value": {"active": False}}))
    assert off.data["active"] is False
    user = get_user_model().objects.get(username="back@example.com")
    assert not user.is_active
    on = scim("PATCH", f"Users/{u['id']}", patch({"op": "replace", "value": {"active": True}}))
    assert on.status_code == 200 and on.data["active"] is True
    user.refresh_from_db()
    assert user.is_active and user.person.active
    assert AuditEvent.objects.filter(door="scim", action="person.reactivate").count() == 1


def test_entra_replace_through_an_unmatched_filter_and_unknown_attributes(scim):
    u = make_user(scim, **{"urn:example:custom:2.0:User": {"costCenter": "42"}, "nickname": "k"})
    r = scim("PATCH", f"Users/{u['id']}", patch(
        {"op": "Add", "path": 'emails[type eq "work"].value', "value": "kim@work.example"}))  # fmt: skip
    assert r.status_code == 200, r.data
    assert r.data["emails"] == [{"type": "work", "value": "kim@work.example"}]
    assert Person.objects.get(directory_user__id=u["id"]).email == "kim@work.example"
    assert "urn:example:custom:2.0:User" not in r.data  # undeclared: accepted and dropped
    same = scim("PATCH", f"Users/{u['id']}", patch({"op": "replace", "path": "nosuch", "value": 1}))
    assert same.status_code == 200 and same.data["meta"]["version"] == r.data["meta"]["version"]


def test_search_at_the_root_covers_users_and_groups(scim):
    a = make_user(scim, "root@example.com")
    scim("POST", "Groups", {"schemas": [GROUP_SCHEMA], "displayName": "root-group"})
    every = json.loads(scim.c.get("/scim/v2/", {"count": 10}).content)
    assert every["totalResults"] == 2
    assert {r["meta"]["resourceType"] for r in every["Resources"]} == {"User", "Group"}
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": 'userName eq "root@example.com"', "startIndex": 1}  # fmt: skip
    found = scim("POST", ".search", body)
    assert found.status_code == 200, found.data
    assert [r["id"] for r in found.data["Resources"]] == [a["id"]]  # Groups have no userName


def test_a_body_over_the_limit_is_413(scim):
    big = json.dumps(user_body(title="x" * (1024 * 1024)))
    resp = scim("POST", "Users", big)
    assert_scim_error(resp, 413)
    assert not DirectoryUser.objects.exists()


def test_the_token_rate_limit_answers_429_with_retry_after(squad):
    token, raw = ApiToken.generate(squad=squad, name="slow", scopes=["scim"])
    ApiToken.objects.filter(pk=token.pk).update(rate_limit_per_minute=2)
    client = Scim(raw)
    # five calls span at most two one-minute windows, so one window holds three of them
    codes = [client("GET", "Users").status_code for _ in range(5)]
    assert 429 in codes and set(codes) <= {200, 429}, codes
    limited = next(r for r in (client("GET", "Users") for _ in range(3)) if r.status_code == 429)
    assert int(limited["Retry-After"]) >= 1
    assert limited.data["schemas"] == [ERROR_SCHEMA] and limited.data["status"] == "429"


def test_refusals_are_logged_with_the_token_that_was_refused(squad):
    _, raw = ApiToken.generate(squad=squad, name="ci", scopes=["catalog:write"])
    assert_scim_error(Scim(raw)("GET", "Users"), 403)
    assert_scim_error(Scim("bl_unknown")("GET", "Users"), 401)
    calls = list(ScimCall.objects.order_by("id"))
    assert [(c.status, c.token_label) for c in calls] == [(403, "ci@playback"), (401, "")]
    assert "lacks the scope 'scim'" in calls[0].error and "Unknown API token" in calls[1].error


def test_a_catalog_person_with_that_email_becomes_the_directory_user(scim):
    from tests.factories import PersonFactory

    imported = PersonFactory(slug="nora", name="Nora (catalog)", email="Nora@Example.com")
    u = make_user(scim, "nora.k@example.com", emails=[{"value": "nora@example.com",
                                                       "primary": True}])  # fmt: skip
    imported.refresh_from_db()
    assert imported.directory_user.id == u["id"] and imported.slug == "nora"
    assert imported.user.username == "nora.k@example.com"
    # two catalog people with one email: ambiguous, a new person instead
    PersonFactory(slug="twin1", email="twin@example.com")
    PersonFactory(slug="twin2", email="twin@example.com")
    t = make_user(scim, "twin@example.com")
    assert Person.objects.get(directory_user__id=t["id"]).slug == "twin"
