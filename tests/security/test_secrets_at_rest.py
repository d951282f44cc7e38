"""Secrets at rest (issue 14, item 5): each kind of secret made through the API, then a real
``pg_dump`` of the test database must not contain any of them in clear; data migrations
encrypt rows written before; ``manage.py rotate_secrets_key`` re-encrypts everything."""

import os
import stat
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from infra.models import Variable, Workspace
from monitoring.models import NotificationChannel
from pipelines.models import PipelineSecret
from portal import crypto
from portal.fields import reencrypt
from portal.models import EventSubscription, IdempotencyRecord
from releases.models import Environment
from squads.models import Service
from tests.conftest import ROOT, client_for
from tests.factories import ServiceFactory

PIPELINE_SECRET = "npm-7f3a9c1e-pipeline-secret"
SENSITIVE_VAR = "db-pass-5b2d8e44-sensitive"
PLAIN_VAR = "region-plain-eu-north-1-x9"
WEBHOOK_SECRET = "gh-hook-1c9e7a33-secret"
SUB_SECRET = "sub-sign-88d0b2f1-secret"
SUB_PASSWORD = "hookPw-0e7d3a51"
SUB_URL = f"http://bot:{SUB_PASSWORD}@127.0.0.1:9/hook"
CHANNEL_URL = "https://hooks.slack.com/services/T0AAA1111/B0BBB2222/slackPathSecret9c7e"
CHANNEL_SECRET = "chan-sign-3e6f0a92-secret"
REPO_TOKEN = "ghp_RepoToken4d1c8b77"
REPO_URL = f"https://ci-bot:{REPO_TOKEN}@github.com/acme/player.git"
WS_TOKEN = "glpat-WsToken2a9f6e13"
WS_URL = f"https://oauth2:{WS_TOKEN}@gitlab.example.com/acme/net.git"
DRIVER_SECRET = "deployer-hmac-6c3b9d05"


def pg_dump() -> str:
    db = settings.DATABASES["default"]
    out = subprocess.run(
        [
            "pg_dump",
            "--no-owner",
            "-h",
            db["HOST"] or "127.0.0.1",
            "-p",
            str(db["PORT"] or 5432),
            "-U",
            db["USER"] or "postgres",
            db["NAME"],
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "CREATE TABLE public.pipelines_pipelinesecret" in out.stdout  # it dumped the real thing
    return out.stdout


def _ok(resp, code):
    assert resp.status_code == code, resp.content[:500]
    return resp.json() if resp.content else None


def _make_every_secret(admin_user, squad):
    """Every kind of secret, through the API; returns the raw token created too."""
    c = client_for(admin_user)
    svc = ServiceFactory(slug="player", owner=squad)
    _ok(
        c.post(
            f"/api/v1/services/{svc.slug}/pipeline-secrets/",
            {"name": "NPM_TOKEN", "value": PIPELINE_SECRET},
            format="json",
        ),
        201,
    )
    _ok(
        c.patch(
            f"/api/v1/services/{svc.slug}/",
            {"webhook_secret": WEBHOOK_SECRET, "repository_url": REPO_URL},
            format="json",
        ),
        200,
    )
    body = {"slug": "net", "owner": squad.slug, "source": "git", "repository_url": WS_URL}
    _ok(c.post("/api/v1/workspaces/", body, format="json"), 201)
    for key, value, sensitive in (("db_pass", SENSITIVE_VAR, True), ("region", PLAIN_VAR, False)):
        body = {"key": key, "value": value, "category": "terraform", "sensitive": sensitive}
        _ok(c.post("/api/v1/workspaces/net/variables/", body, format="json"), 201)
    sub = {
        "squad": squad.slug,
        "name": "bot",
        "url": SUB_URL,
        "secret": SUB_SECRET,
        "event_types": ["catalog.*"],
    }
    _ok(c.post("/api/v1/event-subscriptions/", sub, format="json"), 201)
    channel = {
        "squad": squad.slug,
        "name": "slack",
        "kind": "slack",
        "url": CHANNEL_URL,
        "secret": CHANNEL_SECRET,
    }
    _ok(c.post("/api/v1/alert-channels/", channel, format="json"), 201)
    # a token made with an Idempotency-Key: the idempotency table must not keep its value
    token = _ok(
        c.post(
            "/api/v1/tokens/",
            {"squad": squad.slug, "name": "ci", "scopes": ["pipelines:run"]},
            format="json",
            HTTP_IDEMPOTENCY_KEY="make-ci-token-1",
        ),
        201,
    )["token"]
    # deploy drivers are configured by the installation (admin site / seed): no API door
    Environment.objects.create(
        name="prod-hooked",
        driver="webhook",
        driver_config={"url": "http://127.0.0.1:9/deploy", "secret": DRIVER_SECRET},
    )
    return token


@pytest.mark.django_db(transaction=True)
def test_pg_dump_holds_no_secret_in_clear(admin_user, squad):
    token = _make_every_secret(admin_user, squad)
    values = [
        PIPELINE_SECRET,
        SENSITIVE_VAR,
        PLAIN_VAR,
        WEBHOOK_SECRET,
        SUB_SECRET,
        SUB_PASSWORD,
        CHANNEL_URL,
        CHANNEL_URL.split("/services/")[1],  # the path is the Slack credential
        CHANNEL_SECRET,
        REPO_TOKEN,
        WS_TOKEN,
        DRIVER_SECRET,
        token,
    ]
    dump = pg_dump()
    leaked = [v for v in values if v in dump]
    where = [dump[max(0, dump.find(v) - 300) : dump.find(v) + 50] for v in leaked]
    assert not leaked, f"in clear in pg_dump: {leaked}\n" + "\n---\n".join(where)
    assert crypto.PREFIX in dump  # what is there instead
    # the non-secret parts stay clear (and queryable): the repository's host and path
    assert "@github.com/acme/player.git" in dump
    # and every value reads back whole through the models
    svc = Service.objects.get(slug="player")
    assert svc.webhook_secret == WEBHOOK_SECRET and svc.repository_url == REPO_URL
    assert PipelineSecret.objects.get(service=svc).value == PIPELINE_SECRET
    assert Workspace.objects.get(slug="net").repository_url == WS_URL
    assert set(Variable.objects.values_list("value", flat=True)) == {SENSITIVE_VAR, PLAIN_VAR}
    sub = EventSubscription.objects.get()
    assert (sub.secret, sub.url) == (SUB_SECRET, SUB_URL)
    ch = NotificationChannel.objects.get()
    assert (ch.url, ch.secret) == (CHANNEL_URL, CHANNEL_SECRET)
    env = Environment.objects.get(name="prod-hooked")
    assert env.driver_config["secret"] == DRIVER_SECRET
    assert Service.objects.exclude(webhook_secret="").count() == 1  # "" stays queryable
    rec = IdempotencyRecord.objects.get(key="make-ci-token-1")
    assert token not in str(rec.response_body)


def _raw(table, column, pk):
    with connection.cursor() as cur:
        cur.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])  # noqa: S608
        return cur.fetchone()[0]


@pytest.mark.django_db
def test_data_migration_encrypts_rows_written_in_clear(squad):
    svc = ServiceFactory(slug="legacy", owner=squad)
    secret = PipelineSecret.objects.create(service=svc, name="OLD", value="x")
    with connection.cursor() as cur:  # rows as the code before encryption wrote them
        cur.execute(
            "UPDATE pipelines_pipelinesecret SET value = %s WHERE id = %s",
            ["legacy-clear-value", secret.pk],
        )
        cur.execute(
            "UPDATE squads_service SET repository_url = %s, webhook_secret = %s WHERE id = %s",
            [REPO_URL, "legacy-hook-secret", svc.pk],
        )
    assert PipelineSecret.objects.get(pk=secret.pk).value == "legacy-clear-value"  # still reads
    reencrypt(PipelineSecret, ["value"])  # what the migrations run
    reencrypt(Service, ["webhook_secret", "repository_url"])
    stored = _raw("pipelines_pipelinesecret", "value", secret.pk)
    assert stored.startswith(crypto.PREFIX) and "legacy-clear-value" not in stored
    url = _raw("squads_service", "repository_url", svc.pk)
    assert REPO_TOKEN not in url and url.endswith("@github.com/acme/player.git")
    assert url.startswith("https://fernet.")
    assert PipelineSecret.objects.get(pk=secret.pk).value == "legacy-clear-value"
    svc.refresh_from_db()
    assert svc.repository_url == REPO_URL and svc.webhook_secret == "legacy-hook-secret"


@pytest.mark.django_db
def test_rotate_secrets_key_with_the_generated_key_file(squad, tmp_path, settings, capsys):
    settings.VAR_DIR = tmp_path
    settings.SECRETS_KEYS = []
    svc = ServiceFactory(slug="rot", owner=squad, webhook_secret="rotate-me-hook")
    s = PipelineSecret.objects.create(service=svc, name="K", value="rotate-me-secret")
    path = tmp_path / "secrets.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # generated once, owner only
    old_key = path.read_text().strip()
    before = _raw("pipelines_pipelinesecret", "value", s.pk)
    call_command("rotate_secrets_key")
    out = capsys.readouterr().out
    assert "pipelines.PipelineSecret.value: 1 row re-encrypted" in out
    new_key = path.read_text().strip()
    assert new_key != old_key and "\n" not in new_key  # only the new key is left
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    after = _raw("pipelines_pipelinesecret", "value", s.pk)
    assert after != before
    token = after[len(crypto.PREFIX) :].encode()
    assert Fernet(new_key.encode()).decrypt(token) == b"rotate-me-secret"
    with pytest.raises(InvalidToken):
        Fernet(old_key.encode()).decrypt(token)
    assert PipelineSecret.objects.get(pk=s.pk).value == "rotate-me-secret"
    assert Service.objects.get(pk=svc.pk).webhook_secret == "rotate-me-hook"


@pytest.mark.django_db
def test_rotate_secrets_key_from_the_environment(squad, settings, capsys):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.SECRETS_KEYS = [old]
    s = PipelineSecret.objects.create(
        service=ServiceFactory(slug="rot2", owner=squad), name="K", value="env-rotated"
    )
    settings.SECRETS_KEYS = [new, old]  # the operator lists the new key first
    assert PipelineSecret.objects.get(pk=s.pk).value == "env-rotated"  # old still reads
    call_command("rotate_secrets_key")
    assert "Now remove the old key(s)" in capsys.readouterr().out
    settings.SECRETS_KEYS = [new]  # ... and drops the old one
    assert PipelineSecret.objects.get(pk=s.pk).value == "env-rotated"
    settings.SECRETS_KEYS = [old]
    with pytest.raises(crypto.SecretUnreadable):
        PipelineSecret.objects.get(pk=s.pk)


@pytest.mark.django_db
def test_rotation_refuses_a_value_no_key_reads(squad, settings):
    from django.core.management.base import CommandError

    settings.SECRETS_KEYS = [Fernet.generate_key().decode()]
    s = PipelineSecret.objects.create(
        service=ServiceFactory(slug="rot3", owner=squad), name="K", value="lost"
    )
    settings.SECRETS_KEYS = [Fernet.generate_key().decode()]  # the old key was dropped
    with pytest.raises(CommandError, match="pipelines.PipelineSecret"):
        call_command("rotate_secrets_key")
    assert _raw("pipelines_pipelinesecret", "value", s.pk).startswith(crypto.PREFIX)


def _django_check(**env):
    full = {k: v for k, v in os.environ.items() if k != "BACKLINE_SECRETS_KEY"}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={**full, "DJANGO_SETTINGS_MODULE": "portal.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_requires_a_secrets_key():
    res = _django_check(BACKLINE_PRODUCTION="true", SECRET_KEY="x" * 50)
    assert res.returncode != 0
    assert "BACKLINE_SECRETS_KEY must be set when BACKLINE_PRODUCTION is true" in res.stderr
    ok = _django_check(
        BACKLINE_PRODUCTION="true",
        SECRET_KEY="x" * 50,
        BACKLINE_SECRETS_KEY=Fernet.generate_key().decode(),
    )
    assert ok.returncode == 0, ok.stderr
    bad = _django_check(BACKLINE_SECRETS_KEY="not-a-key")  # refused at start-up, named
    assert bad.returncode != 0 and "BACKLINE_SECRETS_KEY: key 1 is not a Fernet key" in bad.stderr


@pytest.mark.django_db
def test_a_bad_key_is_refused_naming_the_variable(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.SECRETS_KEYS = ["not-a-fernet-key"]
    with pytest.raises(ImproperlyConfigured, match="BACKLINE_SECRETS_KEY: a key is not a Fernet"):
        crypto.encrypt("x")
