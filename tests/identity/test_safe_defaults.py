"""Safe defaults: `make run` listens on 127.0.0.1 unless BACKLINE_BIND says otherwise;
BACKLINE_PRODUCTION refuses demo passwords (web server, `make run`, seed_demo); /metrics can
require a bearer token."""

import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command

from identity.safety import demo_password_users, production_problems
from portal.management.commands import run_portal
from tests.factories import UserFactory
from tests.live_portal import ROOT, free_port, server_env


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_metrics_needs_the_bearer_token_when_one_is_set(client, db, settings):
    assert client.get("/metrics").status_code == 200  # no token configured: open, as before
    settings.METRICS_TOKEN = "s3cret-scrape-token"
    anonymous = client.get("/metrics")
    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"].startswith("Bearer")
    assert b"METRICS_TOKEN" in anonymous.content
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Basic czNjcmV0").status_code == 401
    ok = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token")
    assert ok.status_code == 200 and b"# TYPE" in ok.content


def test_seed_demo_refuses_in_production(db, settings):
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="BACKLINE_PRODUCTION"):
        call_command("seed_demo")


def test_demo_passwords_are_found_on_demo_logins_and_admins(db):
    alice = UserFactory(username="alice")
    alice.set_password("backline-demo")
    alice.save()
    UserFactory(username="bob")  # the tests' password, not a demo one
    ops = UserFactory(username="ops", is_superuser=True)
    ops.set_password("backline-admin")
    ops.save()
    assert demo_password_users() == ["alice", "ops"]
    assert "alice, ops" in production_problems()[0]
    for user in (alice, ops):
        user.set_password("a-real-password-now")
        user.save()
    assert demo_password_users() == [] and production_problems() == []


def in_production(*argv, timeout=120):
    """``python argv...`` as the servers run, with BACKLINE_PRODUCTION=true."""
    env = dict(server_env(), BACKLINE_PRODUCTION="true", SECRET_KEY="x" * 50)
    return subprocess.run(
        [sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_the_web_server_and_make_run_refuse_to_start_with_a_demo_password(
    transactional_db, settings
):
    from django.conf import global_settings

    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS  # the servers' own hashers
    admin = UserFactory(username="admin", is_superuser=True, is_staff=True)
    admin.set_password("backline-admin")
    admin.save()
    wsgi = in_production("-c", "import portal.wsgi")
    assert wsgi.returncode != 0 and "still have a demo password: admin" in wsgi.stderr

    run = in_production("manage.py", "run_portal", "--port", str(free_port()), timeout=300)
    assert run.returncode == 2, run.stdout[-2000:] + run.stderr[-2000:]
    assert "not loading the demo organisation" in run.stdout
    assert "refusing to start: BACKLINE_PRODUCTION is true but these accounts" in run.stdout
    assert "started web" not in run.stdout

    admin.set_password("changed-for-production")
    admin.save()
    ok = in_production("-c", "import portal.wsgi")
    assert ok.returncode == 0, ok.stderr[-2000:]


def test_make_run_binds_loopback_unless_told(settings):
    assert settings.BIND_ADDRESS == "127.0.0.1"  # the default
    cmd = run_portal.Command()
    cmd.port = 8123
    web = cmd.child_specs()[0].argv
    assert "127.0.0.1:8123" in web and not any("0.0.0.0" in a for a in web)
    settings.BIND_ADDRESS = "0.0.0.0"
    assert "0.0.0.0:8123" in cmd.child_specs()[0].argv
    assert run_portal._local_host() == "127.0.0.1"
    settings.BIND_ADDRESS = "::1"
    assert "[::1]:8123" in cmd.child_specs()[0].argv


def test_the_banner_says_where_it_listens(settings, capsys):
    cmd = run_portal.Command()
    cmd.setup_output()
    cmd.port = 8123
    cmd.banner()
    out = capsys.readouterr().out
    assert "Listening on 127.0.0.1 only" in out and "BACKLINE_BIND=0.0.0.0" in out
    settings.BIND_ADDRESS = "0.0.0.0"
    cmd.banner()
    assert "Listening on 0.0.0.0 (BACKLINE_BIND): anyone who reaches" in capsys.readouterr().out
