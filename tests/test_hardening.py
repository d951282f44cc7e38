import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_check_deploy_is_clean_with_production_settings():
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG",)}
    env.update(
        BACKLINE_PRODUCTION="true",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="backline.example.com",
        DEBUG="false",
    )
    out = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "check",
            "--deploy",
            "--tag",
            "security",
            "--fail-level",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no issues" in out.stdout


def test_production_without_secret_key_refuses_to_start():
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    env.update(BACKLINE_PRODUCTION="true", DEBUG="false")
    out = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert "SECRET_KEY must be set" in out.stderr


def test_bad_env_value_fails_loudly_naming_the_variable():
    env = dict(os.environ, DEBUG="maybe")
    out = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert "DEBUG='maybe' is not a boolean" in out.stderr


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("PIPELINES_HEARTBEAT_SECONDS", "often", "is not a number"),
        ("RELEASES_MIN_REQUESTS", "ten", "is not an integer"),
        ("INFRA_CANCEL_GRACE", "2s", "is not a number"),
    ],
)
def test_app_settings_fail_at_start_up_on_a_bad_value(name, value, message):
    """The pipelines, releases and infra knobs are declared in settings.py like the rest: a bad
    value stops the start-up naming the variable (they used to fall back silently at run time)."""
    out = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=dict(os.environ, **{name: value}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert f"{name}={value!r} {message}" in out.stderr


def test_security_headers_on_pages(client, db):
    resp = client.get("/login/")
    assert resp["X-Frame-Options"] == "DENY"
    assert resp["X-Content-Type-Options"] == "nosniff"
    assert resp["Referrer-Policy"] == "same-origin"


def test_api_404_is_json_and_page_404_is_html(client, alice):
    client.force_login(alice)
    api = client.get("/api/v1/services/does-not-exist/")
    assert api.status_code == 404 and api.json()["code"] == "not_found"
    raw = client.get("/api/v1/nothing-here/")
    assert raw.status_code == 404 and raw.json()["code"] == "not_found"
    page = client.get("/no/such/page/")
    assert page.status_code == 404 and b"Nothing here" in page.content


def test_html_post_without_csrf_token_is_refused(alice, squad):
    from django.test import Client

    c = Client(enforce_csrf_checks=True)
    c.force_login(alice)
    resp = c.post("/tokens/", {"name": "x", "squad": "playback"})
    assert resp.status_code == 403
