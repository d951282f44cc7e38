"""What Okta and Entra ID send when a person joins, joins a group and leaves, played over real
HTTP against a live Backline (gunicorn): the squad membership follows the group, and the
deactivation signs the person out (their session cookie stops working, the tokens they made are
revoked, the password form refuses them).

The payloads follow the providers' documented SCIM requests: Okta's (lower-case ``op``, a
``replace`` without ``path`` carrying ``{"active": false}``), Entra ID's (capitalised ``Add`` /
``Replace`` / ``Remove``, ``"active": "False"`` as a string, ``members[value eq "..."]`` paths).
"""

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.contrib.sessions.models import Session

from identity.models import DirectoryGroup, DirectoryUser, UserSession
from portal.models import ApiToken, AuditEvent
from squads.models import Membership, Person, Squad
from tests.identity.scim_helpers import GROUP_SCHEMA, USER_SCHEMA, patch, scim_session, scim_token
from tests.live_portal import PortalServer

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PASSWORD = "break-glass-pw-1"


@pytest.fixture
def scim_server(transactional_db, monkeypatch):
    monkeypatch.setenv("OIDC_GROUP_MAP", "Playback Engineers=playback")
    server = PortalServer().start()
    yield server
    server.stop()


def password_post(base: str, username: str) -> tuple[requests.Session, requests.Response]:
    """The password form, filled as a browser does (CSRF cookie and field)."""
    s = requests.Session()
    page = s.get(f"{base}/login/", timeout=30)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    resp = s.post(
        f"{base}/login/",
        data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": csrf},
        headers={"Referer": f"{base}/login/"},
        allow_redirects=False,
        timeout=30,
    )
    return s, resp


def sign_in(base: str, username: str) -> requests.Session:
    """A browser-like session signed in through the password form (the person's Django user is
    given a password here: the sign-in door itself is not what this test is about)."""
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.get(username=username)
    user.set_password(PASSWORD)
    user.save()
    s, resp = password_post(base, username)
    assert resp.status_code == 302, resp.text[:500]
    assert s.get(f"{base}/", allow_redirects=False, timeout=30).status_code == 200
    assert Session.objects.filter(session_key=s.cookies["sessionid"]).exists()
    return s


def signed_out(base: str, browser: requests.Session) -> bool:
    resp = browser.get(f"{base}/", allow_redirects=False, timeout=30)
    return resp.status_code == 302 and resp.headers["Location"].startswith("/login/")


def password_refused(base: str, username: str) -> bool:
    return password_post(base, username)[1].status_code != 302


def me_status(base: str, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    return requests.get(f"{base}/api/v1/me/", headers=headers, timeout=30).status_code


def assert_signed_out_everywhere(base, browser, username, token=None):
    """The session was deleted from the store (not only refused), the cookie no longer signs
    in, the index is empty, the person's own token is revoked and the password is refused."""
    assert not Session.objects.filter(session_key=browser.cookies["sessionid"]).exists()
    assert signed_out(base, browser)
    assert not UserSession.objects.filter(user__username=username).exists()
    if token is not None:
        assert me_status(base, token) == 401
    assert password_refused(base, username)


def personal_token(username: str, squad: Squad) -> str:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.get(username=username)
    return ApiToken.generate(squad=squad, name="laptop", scopes=[], created_by=user)[1]


def directory_squads(username: str) -> set[str]:
    return set(
        Membership.objects.filter(
            person__user__username=username, source=Membership.Source.DIRECTORY
        ).values_list("squad__slug", flat=True)
    )


def test_okta_create_add_to_group_deactivate(scim_server, squad, other_squad):
    base, scim = scim_server.url, scim_session(scim_token(squad, name="okta"))
    users = f"{base}/scim/v2/Users"
    # Okta looks the person up first, then creates them
    found = scim.get(users, params={"filter": 'userName eq "dana@example.com"', "startIndex": 1,
                                    "count": 100}, timeout=30)  # fmt: skip
    assert found.status_code == 200 and found.json()["totalResults"] == 0, found.text
    assert found.headers["Content-Type"].startswith("application/scim+json")
    created = scim.post(users, json={
        "schemas": [USER_SCHEMA], "userName": "dana@example.com", "externalId": "00u1okta",
        "name": {"givenName": "Dana", "familyName": "Scully"},
        "emails": [{"primary": True, "value": "dana@example.com", "type": "work"}],
        "displayName": "Dana Scully", "locale": "en-US", "active": True,
        "password": "never-stored-1", "groups": [],
    }, timeout=30)  # fmt: skip
    assert created.status_code == 201, created.text
    uid = created.json()["id"]
    assert "password" not in created.json()
    person = Person.objects.get(user__username="dana@example.com")
    assert (person.name, person.email, person.external_id, person.active) == (
        "Dana Scully", "dana@example.com", "00u1okta", True,
    )  # fmt: skip
    assert not person.user.has_usable_password()
    # a manual membership the directory must leave alone
    Membership.objects.create(person=person, squad=other_squad)

    browser = sign_in(base, "dana@example.com")
    token = personal_token("dana@example.com", squad)
    assert me_status(base, token) == 200

    # the group: looked up, created empty, then members pushed with PATCH add
    groups = f"{base}/scim/v2/Groups"
    found = scim.get(groups, params={"filter": 'displayName eq "playback"'}, timeout=30)
    assert found.json()["totalResults"] == 0
    group = scim.post(groups, json={"schemas": [GROUP_SCHEMA], "displayName": "playback",
                                    "members": []}, timeout=30)  # fmt: skip
    assert group.status_code == 201, group.text
    gid = group.json()["id"]
    added = scim.patch(f"{groups}/{gid}", json=patch(
        {"op": "add", "path": "members", "value": [{"value": uid, "display": "dana@example.com"}]}
    ), timeout=30)  # fmt: skip
    assert added.status_code == 200, added.text
    assert [m["value"] for m in added.json()["members"]] == [uid]
    assert directory_squads("dana@example.com") == {"playback"}
    assert Membership.objects.get(person=person, squad=other_squad).source == "manual"
    assert not signed_out(base, browser)

    # Okta deactivates: a replace without a path
    gone = scim.patch(f"{users}/{uid}", json=patch({"op": "replace", "value": {"active": False}}),
                      timeout=30)  # fmt: skip
    assert gone.status_code == 200, gone.text
    assert gone.json()["active"] is False
    assert_signed_out_everywhere(base, browser, "dana@example.com", token)
    person.refresh_from_db()
    assert person.active is False and person.user.is_active is False
    doors = set(AuditEvent.objects.filter(door="scim").values_list("action", flat=True))
    assert {"person.provision", "directory_group.create", "directory_group.update",
            "membership.create", "person.deactivate", "person.sign_out", "token.revoke"} <= doors  # fmt: skip


def test_entra_create_add_to_group_deactivate_remove_delete(scim_server, squad, other_squad):
    base, scim = scim_server.url, scim_session(scim_token(squad, name="entra"))
    users, groups = f"{base}/scim/v2/Users", f"{base}/scim/v2/Groups"
    # Entra's probe for a user that does not exist, then the create
    probe = scim.get(users, params={"filter": 'userName eq "non-existent-7f3c"'}, timeout=30)
    assert probe.status_code == 200 and probe.json()["Resources"] == []
    created = scim.post(users, json={
        "schemas": [USER_SCHEMA, ENTERPRISE], "externalId": "8e2c4b1a-entra", "userName":
        "Erin@contoso.com", "active": True, "displayName": "Erin Reyes",
        "emails": [{"primary": True, "type": "work", "value": "erin@contoso.com"}],
        "meta": {"resourceType": "User"}, "name": {"formatted": "Erin Reyes",
        "familyName": "Reyes", "givenName": "Erin"}, "roles": [],
        ENTERPRISE: {"department": "Playback", "employeeNumber": "1042"},
    }, timeout=30)  # fmt: skip
    assert created.status_code == 201, created.text
    uid = created.json()["id"]
    assert created.json()[ENTERPRISE]["department"] == "Playback"
    # userName is case-insensitive (caseExact false): Entra's lookup in another case finds her
    found = scim.get(users, params={"filter": 'userName eq "erin@CONTOSO.com"'}, timeout=30)
    assert [r["id"] for r in found.json()["Resources"]] == [uid]
    found = scim.get(users, params={"filter": 'externalId eq "8e2c4b1a-entra"'}, timeout=30)
    assert [r["id"] for r in found.json()["Resources"]] == [uid]
    person = Person.objects.get(directory_user__id=uid)
    Membership.objects.create(person=person, squad=other_squad)
    browser = sign_in(base, "Erin@contoso.com")

    # Entra creates the group with members: [] then adds with a capitalised op
    group = scim.post(groups, json={"schemas": [GROUP_SCHEMA], "externalId": "5a7d-grp",
                                    "displayName": "Playback Engineers", "members": []},
                      timeout=30)  # fmt: skip
    assert group.status_code == 201, group.text
    gid = group.json()["id"]
    added = scim.patch(f"{groups}/{gid}", json=patch(
        {"op": "Add", "path": "members", "value": [{"value": uid}]}), timeout=30)  # fmt: skip
    assert added.status_code == 200, added.text
    assert directory_squads("Erin@contoso.com") == {"playback"}  # through OIDC_GROUP_MAP

    # Entra's deactivation: Replace, active as the string "False"
    off = scim.patch(f"{users}/{uid}", json=patch(
        {"op": "Replace", "path": "active", "value": "False"}), timeout=30)  # fmt: skip
    assert off.status_code == 200, off.text
    assert off.json()["active"] is False
    assert_signed_out_everywhere(base, browser, "Erin@contoso.com")

    # removal from the group by a value filter: the directory membership goes, manual stays
    removed = scim.patch(f"{groups}/{gid}", json=patch(
        {"op": "Remove", "path": f'members[value eq "{uid}"]'}), timeout=30)  # fmt: skip
    assert removed.status_code == 200, removed.text
    assert "members" not in removed.json()
    assert directory_squads("Erin@contoso.com") == set()
    assert Membership.objects.filter(person=person, squad=other_squad, source="manual").exists()

    # hard delete after the soft-delete period: gone from SCIM, kept (inactive) in the catalog
    assert scim.delete(f"{users}/{uid}", timeout=30).status_code == 204
    assert scim.get(f"{users}/{uid}", timeout=30).status_code == 404
    assert not DirectoryUser.objects.filter(pk=uid).exists()
    person.refresh_from_db()
    assert person.active is False
    assert DirectoryGroup.objects.filter(pk=gid).exists()


def test_concurrent_pushes_lose_nothing(scim_server, squad):
    """Okta pushes in parallel: the same new person twice at once is one person (the other
    call a 409, never a 500), and members added to one group by concurrent PATCHes all stay."""
    base, raw = scim_server.url, scim_token(squad, name="okta")
    users, groups = f"{base}/scim/v2/Users", f"{base}/scim/v2/Groups"

    def post_same(_):
        return scim_session(raw).post(users, json={"schemas": [USER_SCHEMA],
                                      "userName": "twin@example.com"}, timeout=60).status_code  # fmt: skip

    with ThreadPoolExecutor(4) as pool:
        codes = sorted(pool.map(post_same, range(4)))
    assert codes == [201, 409, 409, 409], codes
    ids = [scim_session(raw).post(users, json={"schemas": [USER_SCHEMA], "userName":
           f"m{i}@example.com"}, timeout=60).json()["id"] for i in range(6)]  # fmt: skip
    gid = scim_session(raw).post(groups, json={"schemas": [GROUP_SCHEMA],
                                 "displayName": "playback"}, timeout=60).json()["id"]  # fmt: skip

    def add(uid):
        body = patch({"op": "add", "path": "members", "value": [{"value": uid}]})
        return scim_session(raw).patch(f"{groups}/{gid}", json=body, timeout=60).status_code

    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(add, ids)) == {200}
    assert set(DirectoryGroup.objects.get(pk=gid).members.values_list("pk", flat=True)) == set(ids)
    assert Membership.objects.filter(squad=squad, source="directory").count() == 6
