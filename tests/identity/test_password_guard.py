"""Password sign-in behind the brute-force guard (real Redis counters): per username, per
address, the lockout's duration on the page, audit events, the admin site's form and the
BACKLINE_PASSWORD_LOGIN switch."""

import pytest
from django.test import Client

from identity import guard
from portal.models import AuditEvent
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def attempt(client, username, password, ip="10.0.0.7", url="/login/"):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=ip)


def signed_in(client):
    return client.get("/api/v1/me/").status_code == 200


def test_twenty_wrong_passwords_lock_the_username_then_the_right_one_is_refused_too(
    alice, settings, monkeypatch
):
    settings.LOGIN_MAX_FAILURES = 5
    settings.LOGIN_LOCKOUT_SECONDS = 900
    c = Client()
    codes = [attempt(c, "alice", f"wrong-{i}").status_code for i in range(20)]
    assert codes == [200] * 4 + [429] * 16
    refused = attempt(c, "alice", "wrong-again")
    text = refused.content.decode()
    assert "Too many failed sign-ins for this username" in text
    assert "locked for 15 minutes" in text and refused["Retry-After"] in ("899", "900")
    assert "single sign-on" not in text and "sign in with" not in text  # SSO is not configured

    right = attempt(c, "alice", PASSWORD)
    assert right.status_code == 429 and "locked for" in right.content.decode()
    assert not signed_in(c)
    # the same username from another address is locked too
    assert attempt(Client(), "alice", PASSWORD, ip="10.9.9.9").status_code == 429

    failed = AuditEvent.objects.filter(action="auth.login_failed", target_repr="alice")
    assert failed.count() == 5 and {e.ip for e in failed} == {"10.0.0.7"}
    lock = AuditEvent.objects.get(action="auth.locked_out", target_repr="alice")
    assert lock.data == {"scope": "username", "seconds": 900}

    # once the lockout is over (the guard's clock moved past it), the right password works
    later = guard.now() + 901
    monkeypatch.setattr(guard, "now", lambda: later)
    ok = attempt(c, "alice", PASSWORD)
    assert ok.status_code == 302 and ok["Location"] == "/"
    assert signed_in(c)


def test_the_time_left_is_shown(alice, settings, monkeypatch):
    settings.LOGIN_MAX_FAILURES = 2
    settings.LOGIN_LOCKOUT_SECONDS = 600
    c = Client()
    attempt(c, "alice", "x")
    attempt(c, "alice", "y")
    start = guard.now()
    monkeypatch.setattr(guard, "now", lambda: start + 540)
    resp = attempt(c, "alice", PASSWORD)
    assert resp.status_code == 429 and "locked for 60 seconds" in resp.content.decode()


def test_the_lockout_points_at_single_sign_on_when_it_is_configured(alice, settings):
    settings.LOGIN_MAX_FAILURES = 1
    settings.OIDC_ISSUER, settings.OIDC_CLIENT_ID = "http://127.0.0.1:9", "backline"
    settings.OIDC_PROVIDER_NAME = "Okta"
    resp = attempt(Client(), "alice", "wrong")
    assert resp.status_code == 429
    assert "try again after that (or sign in with Okta)." in resp.content.decode()


def test_a_success_ends_the_run_of_failures(alice, settings):
    settings.LOGIN_MAX_FAILURES = 3
    c = Client()
    for _ in range(3):
        assert attempt(c, "alice", "nope").status_code == 200
        assert attempt(c, "alice", "nope-2").status_code == 200
        assert attempt(c, "alice", PASSWORD).status_code == 302
        c.logout()


def test_many_usernames_from_one_address_lock_the_address(alice, bob, settings):
    settings.LOGIN_MAX_FAILURES = 100
    settings.LOGIN_IP_MAX_FAILURES = 10
    c = Client()
    codes = [attempt(c, f"user{i}", "guess", ip="10.6.6.6").status_code for i in range(12)]
    assert codes == [200] * 9 + [429] * 3
    resp = attempt(c, "bob", PASSWORD, ip="10.6.6.6")
    assert resp.status_code == 429 and "for your address" in resp.content.decode()
    assert attempt(Client(), "bob", PASSWORD, ip="10.1.1.1").status_code == 302
    assert AuditEvent.objects.get(action="auth.locked_out").data["scope"] == "address"


def test_the_admin_sites_sign_in_form_is_guarded_too(admin_user, settings):
    settings.LOGIN_MAX_FAILURES = 3
    c = Client()
    url = "/admin/login/?next=/admin/"
    codes = [attempt(c, "admin", "bad", url=url).status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    resp = attempt(c, "admin", PASSWORD, url=url)
    assert "Too many failed sign-ins" in resp.content.decode()
    assert c.get("/admin/").status_code == 302  # not signed in


def test_password_login_off_removes_the_form_and_refuses_posts(alice, settings):
    settings.PASSWORD_LOGIN = False
    settings.OIDC_ISSUER = "http://127.0.0.1:9"
    settings.OIDC_CLIENT_ID = "backline"
    settings.OIDC_PROVIDER_NAME = "Okta"
    c = Client()
    page = c.get("/login/").content.decode()
    assert "Sign in with Okta" in page and 'id="id_password"' not in page
    resp = attempt(c, "alice", PASSWORD)
    assert resp.status_code == 403 and "Password sign-in is turned off" in resp.content.decode()
    assert not signed_in(c)
    admin = attempt(c, "alice", PASSWORD, url="/admin/login/")
    assert "Password sign-in is turned off" in admin.content.decode()
    assert not signed_in(c)


def test_redis_down_does_not_stop_password_sign_in(alice, settings, caplog):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    c = Client()
    assert attempt(c, "alice", "wrong").status_code == 200
    assert attempt(c, "alice", PASSWORD).status_code == 302
    assert "sign-in guard: Redis unavailable" in caplog.text


def test_sign_out_is_a_post_with_the_csrf_token(alice):
    c = Client(enforce_csrf_checks=True)
    c.force_login(alice)
    assert c.get("/logout/").status_code == 405
    assert c.post("/logout/").status_code == 403
    assert signed_in(c)
