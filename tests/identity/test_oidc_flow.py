"""Single sign-on against a real OpenID provider (oidc-provider on loopback) over HTTP: the
code flow with PKCE, people created just in time or linked by verified email, squads and org
admin from the claims, and every bad path answered with a clear page."""

import base64
import json

import pytest
import requests

from identity.oidc import SESSION_ID_TOKEN
from portal.models import AuditEvent
from squads.models import Membership, Person
from tests.conftest import PASSWORD
from tests.factories import MembershipFactory, PersonFactory, SquadFactory, UserFactory
from tests.identity.provider import Provider, query, to_callback, warm_up

pytestmark = pytest.mark.django_db(transaction=True)

DANA = {
    "login": "dana",
    "password": "dana-secret",
    "email": "dana@example.com",
    "name": "Dana Scully",
    "groups": ["playback", "group:default/search", "not-a-squad"],
}


def sign_in(live_server, login="dana", password="dana-secret"):
    s = requests.Session()
    callback = to_callback(s, live_server.url, login, password)
    resp = s.get(callback, timeout=30)
    return s, resp


def me(session, live_server):
    resp = session.get(f"{live_server.url}/api/v1/me/", timeout=10)
    assert resp.status_code == 200, resp.text[:300]
    return resp.json()


def test_first_sign_in_creates_the_person_with_the_claims_squads(
    provider, live_server, squad, other_squad
):
    provider.set_accounts({"okta-00u1": DANA})
    s = requests.Session()
    start = s.get(f"{live_server.url}/oidc/login/", allow_redirects=False, timeout=20)
    auth = query(start.headers["Location"])
    assert start.headers["Location"].startswith(f"{provider.issuer}/auth?")
    assert auth["code_challenge_method"] == "S256" and len(auth["code_challenge"]) >= 43
    assert auth["nonce"] and auth["state"] and auth["scope"] == "openid email profile groups"
    before = s.cookies["sessionid"]

    callback = to_callback(s, live_server.url, "dana", "dana-secret")
    resp = s.get(callback, timeout=30)
    assert resp.status_code == 200 and resp.url == f"{live_server.url}/", resp.text[:500]
    assert s.cookies["sessionid"] != before  # the session was cycled at sign-in

    person = Person.objects.get(oidc_subject="okta-00u1")
    assert person.name == "Dana Scully" and person.email == "dana@example.com"
    assert person.user.username == "dana" and not person.user.has_usable_password()
    assert not person.user.is_superuser
    rows = {m.squad.slug: m.source for m in Membership.objects.filter(person=person)}
    assert rows == {"playback": "directory", "search": "directory"}
    body = me(s, live_server)
    assert body["username"] == "dana" and sorted(body["squads"]) == ["playback", "search"]
    api = s.get(f"{live_server.url}/api/v1/people/{person.slug}/", timeout=10).json()
    assert sorted((m["squad"], m["source"]) for m in api["squads"]) == [
        ("playback", "directory"),
        ("search", "directory"),
    ]
    events = AuditEvent.objects.filter(door="sso", action="membership.create")
    assert sorted(e.squad.slug for e in events) == ["playback", "search"]
    assert AuditEvent.objects.filter(door="sso", action="person.sign_in", actor="dana").count() == 1

    # the old session key is dead: replaying the pre-login cookie is an anonymous visitor
    stale = requests.get(f"{live_server.url}/api/v1/me/", cookies={"sessionid": before}, timeout=10)
    assert stale.status_code in (401, 403)


def test_second_sign_in_follows_the_claim_and_keeps_manual_memberships(
    provider, live_server, squad, other_squad
):
    data = SquadFactory(slug="data", name="Data")
    provider.set_accounts({"okta-00u1": {**DANA, "groups": ["playback", "data"]}})
    sign_in(live_server)
    person = Person.objects.get(oidc_subject="okta-00u1")
    MembershipFactory(person=person, squad=other_squad, role="lead")  # typed in Backline
    Membership.objects.filter(person=person, squad=data).update(role="product_owner")

    provider.set_accounts({"okta-00u1": {**DANA, "groups": ["data"]}})
    s, resp = sign_in(live_server)
    assert resp.status_code == 200, resp.text[:300]
    rows = {m.squad.slug: (m.source, m.role) for m in Membership.objects.filter(person=person)}
    assert rows == {
        "data": ("directory", "product_owner"),  # roles stay Backline's
        "search": ("manual", "lead"),
    }
    removed = AuditEvent.objects.get(door="sso", action="membership.delete")
    assert removed.squad == squad and removed.actor == "dana"
    assert sorted(me(s, live_server)["squads"]) == ["data", "search"]


def test_admin_group_members_are_org_admins_until_they_leave_it(provider, live_server, settings):
    settings.OIDC_ADMIN_GROUPS = ["Backline-Admins"]
    provider.set_accounts({"okta-00u2": {**DANA, "groups": ["backline-admins"]}})
    s, resp = sign_in(live_server)
    user = Person.objects.get(oidc_subject="okta-00u2").user
    assert user.is_superuser and user.is_staff
    assert s.get(f"{live_server.url}/admin/", timeout=10).status_code == 200
    assert AuditEvent.objects.filter(action="user.admin_granted", door="sso").count() == 1

    provider.set_accounts({"okta-00u2": {**DANA, "groups": []}})
    s, resp = sign_in(live_server)
    user.refresh_from_db()
    assert not user.is_superuser and not user.is_staff
    assert AuditEvent.objects.filter(action="user.admin_revoked", door="sso").count() == 1


def test_first_sign_in_links_an_existing_person_by_verified_email_only(
    provider, live_server, alice
):
    alice.email = "alice@example.com"
    alice.save()
    provider.set_accounts(
        {
            "entra-alice": {**DANA, "login": "alice.sso", "email": "ALICE@example.com"},
            "entra-mallory": {
                **DANA,
                "login": "mallory",
                "email": "alice@example.com",
                "email_verified": False,
            },
        }
    )
    s, _ = sign_in(live_server, "alice.sso")
    assert me(s, live_server)["username"] == "alice"
    assert Person.objects.get(oidc_subject="entra-alice").user == alice
    assert me(s, live_server)["squads"] == ["playback"]  # her manual membership stays

    s, _ = sign_in(live_server, "mallory")
    assert me(s, live_server)["username"] != "alice"  # an unverified email links to no one
    assert Person.objects.get(oidc_subject="entra-mallory").user != alice


@pytest.mark.parametrize(
    "next_url,lands_on",
    [
        ("/squads/?q=play", "/squads/?q=play"),
        ("https://evil.example.com/steal", "/"),  # never off-site (no open redirect)
        ("//evil.example.com/", "/"),
    ],
)
def test_sign_in_returns_to_the_page_asked_for_on_this_site_only(
    provider, live_server, next_url, lands_on
):
    provider.set_accounts({"okta-00u1": DANA})
    s = requests.Session()
    callback = to_callback(s, live_server.url, "dana", "dana-secret", {"next": next_url})
    resp = s.get(callback, allow_redirects=False, timeout=30)
    assert resp.status_code == 302 and resp.headers["Location"] == lands_on
    assert me(s, live_server)["username"] == "dana"


def test_a_person_the_directory_deactivated_is_not_signed_in(provider, live_server):
    PersonFactory(slug="dana", name="Dana", oidc_subject="okta-00u1", active=False)
    provider.set_accounts({"okta-00u1": DANA})
    s, resp = sign_in(live_server)
    assert resp.status_code == 403 and "deactivated" in resp.text
    assert s.get(f"{live_server.url}/api/v1/me/", timeout=10).status_code in (401, 403)


def _refused(resp, status, *words):
    assert resp.status_code == status, (resp.status_code, resp.text[:800])
    assert "Sign-in did not complete" in resp.text
    message = resp.text.split('id="sign-in-error">', 1)[-1].split("</div>", 1)[0]
    for word in words:
        assert word in message, (word, message)


def test_wrong_state_is_refused(provider, live_server):
    provider.set_accounts({"okta-00u1": DANA})
    s = requests.Session()
    callback = to_callback(s, live_server.url, "dana", "dana-secret")
    state = query(callback)["state"]
    resp = s.get(callback.replace(state, "forged-state-value"), timeout=30)
    _refused(resp, 400, "state")
    assert not Person.objects.filter(oidc_subject="okta-00u1").exists()


def test_a_replayed_code_is_refused_by_the_provider(provider, live_server):
    provider.set_accounts({"okta-00u1": DANA})
    first = requests.Session()
    used = to_callback(first, live_server.url, "dana", "dana-secret")
    assert first.get(used, timeout=30).status_code == 200

    # a second sign-in in another browser, answered with the first (already redeemed) code
    second = requests.Session()
    fresh = to_callback(second, live_server.url, "dana", "dana-secret")
    replay = fresh.replace(query(fresh)["code"], query(used)["code"])
    resp = second.get(replay, timeout=30)
    _refused(resp, 400, "invalid_grant")
    assert second.get(f"{live_server.url}/api/v1/me/", timeout=10).status_code in (401, 403)


@pytest.mark.parametrize(
    "tamper,words",
    [
        ("exp", ["ID token was refused", "expired"]),
        ("aud", ["ID token was refused", "aud"]),
        ("aud-azp", ["ID token was refused", "aud"]),  # azp naming us does not make up for aud
        ("iss", ["ID token was refused", "iss"]),
        ("nonce", ["ID token was refused", "nonce"]),
        ("sig", ["ID token was refused", "signature"]),  # not signed by a key of the JWKS
    ],
)
def test_an_id_token_with_a_bad_claim_is_refused(provider, live_server, tamper, words):
    provider.set_accounts({"okta-00u1": {**DANA, "tamper": tamper}})
    s, resp = sign_in(live_server)
    _refused(resp, 400, *words)
    assert not Person.objects.filter(oidc_subject="okta-00u1").exists()
    assert s.get(f"{live_server.url}/api/v1/me/", timeout=10).status_code in (401, 403)


def _password_sign_in(live_server, user):
    s = requests.Session()
    s.get(f"{live_server.url}/login/", timeout=10)
    resp = s.post(
        f"{live_server.url}/login/",
        data={
            "username": user.username,
            "password": PASSWORD,
            "csrfmiddlewaretoken": s.cookies["csrftoken"],
        },
        timeout=10,
    )
    assert resp.status_code == 200 and resp.url == f"{live_server.url}/", resp.text[:400]
    return s


def test_provider_down_at_discovery_gives_a_page_and_passwords_still_work(
    provider, live_server, alice
):
    provider.stop()
    resp = requests.get(f"{live_server.url}/oidc/login/", timeout=30)
    _refused(resp, 502, "did not answer at discovery", provider.issuer, "password")
    page = requests.get(f"{live_server.url}/login/", timeout=10)
    assert "Sign in with Test IdP" in page.text and 'id="id_password"' in page.text
    _password_sign_in(live_server, alice)


def test_provider_down_at_callback_gives_a_page_and_passwords_still_work(
    provider, live_server, alice
):
    provider.set_accounts({"okta-00u1": DANA})
    s = requests.Session()
    callback = to_callback(s, live_server.url, "dana", "dana-secret")
    provider.stop()
    _refused(s.get(callback, timeout=30), 502, "did not answer")
    _password_sign_in(live_server, alice)


def test_the_provider_refusing_is_a_clear_page(provider, live_server):
    url = f"{live_server.url}/oidc/callback/?error=access_denied&error_description=User+said+no"
    _refused(requests.get(url, timeout=10), 400, "access_denied", "User said no")


def post_sign_out(s, live_server):
    return s.post(
        f"{live_server.url}/logout/",
        data={"csrfmiddlewaretoken": s.cookies["csrftoken"]},
        headers={"Referer": f"{live_server.url}/"},
        allow_redirects=False,
        timeout=20,
    )


def test_sign_out_ends_the_session_and_the_providers(provider, live_server):
    provider.set_accounts({"okta-00u1": DANA})
    s, _ = sign_in(live_server)
    assert me(s, live_server)["username"] == "dana"
    home = s.get(f"{live_server.url}/", timeout=10)
    assert home.status_code == 200
    resp = post_sign_out(s, live_server)
    assert resp.status_code == 302, resp.text[:300]
    end = query(resp.headers["Location"])
    assert resp.headers["Location"].startswith(f"{provider.issuer}/session/end?")
    assert end["post_logout_redirect_uri"] == f"{live_server.url}/login/"
    assert end["id_token_hint"].count(".") == 2 and end["client_id"] == "backline-tests"
    assert s.get(f"{live_server.url}/api/v1/me/", timeout=10).status_code in (401, 403)
    # the provider shows its own "sign out there too?" page for that request
    assert "sign-out" in s.get(resp.headers["Location"], timeout=20).text.lower()


@pytest.fixture
def other_provider(live_server, tmp_path, settings):
    """start(**options): an oidc-provider configured differently (no logout, claims only at
    userinfo), Backline pointed at it."""
    started = []

    def start(**options):
        p = Provider(tmp_path, live_server.url, **options).start()
        started.append(p)
        p.configure(settings)
        warm_up(live_server.url)
        return p

    yield start
    for p in started:
        p.stop()


def test_sign_out_without_end_session_endpoint_is_local(live_server, other_provider):
    p = other_provider(logout=False)
    p.set_accounts({"okta-00u1": DANA})
    s, _ = sign_in(live_server)
    resp = post_sign_out(s, live_server)
    assert resp.status_code == 302 and resp.headers["Location"] == "/login/"
    assert s.get(f"{live_server.url}/api/v1/me/", timeout=10).status_code in (401, 403)


def test_groups_only_at_the_userinfo_endpoint_are_read_there(live_server, other_provider, squad):
    p = other_provider(userinfo_only=True)
    p.set_accounts({"okta-00u1": {**DANA, "groups": ["playback"]}})
    s, resp = sign_in(live_server)
    assert resp.status_code == 200, resp.text[:300]
    person = Person.objects.get(oidc_subject="okta-00u1")
    assert person.email == "dana@example.com"
    assert [m.squad.slug for m in person.memberships.all()] == ["playback"]
    assert "groups" not in id_token_claims(s)  # they really came from userinfo


def id_token_claims(session):
    from django.contrib.sessions.models import Session

    data = Session.objects.get(session_key=session.cookies["sessionid"]).get_decoded()
    payload = data[SESSION_ID_TOKEN].split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_the_callback_is_rate_limited_per_address(provider, live_server, settings, monkeypatch):
    from identity import guard

    settings.OIDC_CALLBACK_PER_MINUTE = 3
    monkeypatch.setattr(guard, "now", lambda: 1_800_000_000.0)  # one fixed minute
    url = f"{live_server.url}/oidc/callback/?code=x&state=y"
    codes = [requests.get(url, timeout=20).status_code for _ in range(5)]
    assert codes == [400, 400, 400, 429, 429]
    resp = requests.get(url, timeout=20)
    assert "Too many sign-in attempts" in resp.text and resp.headers["Retry-After"] == "60"


def test_without_oidc_settings_there_is_no_button_and_no_flow(client, db, settings):
    settings.OIDC_ISSUER = ""
    page = client.get("/login/")
    assert b"Sign in with" not in page.content and b'id="id_password"' in page.content
    assert client.get("/oidc/login/").status_code == 404
    assert client.get("/oidc/callback/?code=x&state=y").status_code == 404


def test_the_id_token_is_kept_for_sign_out_only_in_the_session(provider, live_server):
    provider.set_accounts({"okta-00u1": DANA})
    s, _ = sign_in(live_server)
    from django.contrib.sessions.models import Session

    data = Session.objects.get(session_key=s.cookies["sessionid"]).get_decoded()
    assert data[SESSION_ID_TOKEN].count(".") == 2
    assert not any(k.startswith("_state_") for k in data)  # the sign-in's state is consumed


def test_the_audit_log_filters_sign_in_changes_by_the_sso_door(provider, live_server, squad):
    from django.test import Client

    provider.set_accounts({"okta-00u1": {**DANA, "groups": ["playback"]}})
    sign_in(live_server)
    admin = Client()
    admin.force_login(UserFactory(username="root", is_superuser=True, is_staff=True))
    page = admin.get("/audit/?door=sso").content.decode()
    assert "membership.create" in page and "person.sign_in" in page
    api = admin.get("/api/v1/audit/", {"door": "sso"}).json()["results"]
    assert {e["action"] for e in api} == {"membership.create", "person.sign_in"}


@pytest.fixture
def discovery_server():
    """serve(document): a loopback HTTP server answering the discovery document given (a
    provider misconfigured in ways oidc-provider cannot be)."""
    import json as _json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    servers = []

    def serve(document):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = _json.dumps(document(issuer)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        issuer = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return issuer

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "document,words",
    [
        (lambda iss: {"issuer": "https://evil.example.com"}, ["names the issuer", "evil"]),
        (lambda iss: {"issuer": iss, "jwks_uri": f"{iss}/jwks"}, ["cannot be used"]),
    ],
    ids=["issuer-mismatch", "no-authorization-endpoint"],
)
def test_a_misconfigured_provider_is_a_clear_page(
    client, db, settings, discovery_server, document, words
):
    settings.OIDC_ISSUER = discovery_server(document)
    settings.OIDC_CLIENT_ID = "backline"
    _refused(client.get("/oidc/login/"), 502, *words)
