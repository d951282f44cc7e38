"""Credentials stay write-only (issue 14, item 5): an alert channel's URL and the credential
part of a repository URL are shown redacted in the API, the pages, the Backstage export, the
audit log and the clone logs (pipeline and Terraform); sending the redacted form back keeps
the stored value; every log masks a secret's URL-encoded, hex and JSON-escaped forms."""

import json
from urllib.parse import quote

import pytest

from infra.models import Workspace
from monitoring.models import NotificationChannel
from pipelines import runner as pipeline_runner
from pipelines import services as pipeline_services
from pipelines.models import PipelineConfig, PipelineRun
from portal.actors import Actor
from portal.executor import run_process
from portal.models import AuditEvent, EventDelivery
from squads.models import Service
from tests.conftest import client_for
from tests.factories import ServiceFactory

SLACK = "https://hooks.slack.com/services/T0AAA1111/B0BBB2222/slackPathSecret9c7e"
SLACK_SHOWN = "https://hooks.slack.com/…/****"
TOKEN = "ghp_RepoToken4d1c8b77"
REPO = f"https://ci-bot:{TOKEN}@github.com/acme/player.git"
REPO_SHOWN = "https://****@github.com/acme/player.git"
# nothing listens on port 9: the clone fails at once, after the URL was logged
DEAD_REPO = f"http://ci-bot:{TOKEN}@127.0.0.1:9/acme/player.git"

pytestmark = pytest.mark.django_db


def test_alert_channel_url_is_write_only(alice, charlie, squad):
    c = client_for(alice)
    body = {"squad": squad.slug, "name": "slack", "kind": "slack", "url": SLACK}
    created = c.post("/api/v1/alert-channels/", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["url"] == SLACK_SHOWN
    for who in (alice, charlie):  # the owning squad and everyone else alike
        listed = client_for(who).get("/api/v1/alert-channels/").content.decode()
        assert "slackPathSecret9c7e" not in listed and "T0AAA1111" not in listed
        assert SLACK_SHOWN in listed
        page = client_for(who).get("/alerts/").content.decode()
        assert "slackPathSecret9c7e" not in page and "T0AAA1111" not in page
    assert NotificationChannel.objects.get().url == SLACK  # the sender still has it
    bad = c.post("/api/v1/alert-channels/", {**body, "url": "not a url"}, format="json")
    assert bad.status_code == 400 and "url" in bad.json()["errors"], bad.content


def test_alert_delivery_url_and_errors_are_redacted(admin_user, squad):
    from portal import outbound

    d = EventDelivery.objects.create(
        kind="alert",
        url="http://127.0.0.1:9/services/T0AAA1111/B0BBB2222/slackPathSecret9c7e",
        delivery_id="6f1c8a52-97e3-4c55-9a0e-2b4f1d6c7e80",
        event_type="alert.firing",
        payload={"alert": 1},
    )
    code, error, _ = outbound._post(d, b"{}", outbound.sender_for("alert"))
    assert code is None and error  # connection refused, with requests' message
    assert "slackPathSecret9c7e" not in error and "B0BBB2222" not in error, error
    shown = client_for(admin_user).get(f"/api/v1/event-deliveries/{d.pk}/").json()
    assert shown["url"] == "http://127.0.0.1:9/…/****"


def test_repository_credentials_redacted_in_api_pages_export_and_audit(alice, squad):
    c = client_for(alice)
    ServiceFactory(slug="player", owner=squad)
    resp = c.patch("/api/v1/services/player/", {"repository_url": REPO}, format="json")
    assert resp.status_code == 200 and resp.json()["repository_url"] == REPO_SHOWN
    shown = [
        c.get("/api/v1/services/player/").content.decode(),
        c.get("/api/v1/services/").content.decode(),
        c.get("/services/player/").content.decode(),
        c.get("/services/player/edit/").content.decode(),
        c.get("/pipelines/services/player/").content.decode(),
        c.get("/api/v1/catalog/export").content.decode(),
        json.dumps(list(AuditEvent.objects.values_list("data", flat=True))),
    ]
    for i, text in enumerate(shown):
        assert TOKEN not in text, f"credential shown in #{i}"
    assert REPO_SHOWN in shown[0] and REPO_SHOWN in shown[2] and REPO_SHOWN in shown[5]
    # a client sending back what it was shown keeps the credential
    resp = c.patch(
        "/api/v1/services/player/",
        {"repository_url": REPO_SHOWN, "description": "d"},
        format="json",
    )
    assert resp.status_code == 200
    assert Service.objects.get(slug="player").repository_url == REPO
    # and the HTML form, posted back as shown, too
    svc = Service.objects.get(slug="player")
    form = {
        "name": svc.name,
        "owner": svc.owner_id,
        "type": svc.type,
        "lifecycle": svc.lifecycle,
        "tier": svc.tier,
        "repository_url": REPO_SHOWN,
        "default_branch": "main",
        "tags_text": "",
    }
    resp = c.post("/services/player/edit/", form)
    assert resp.status_code == 302, resp.content.decode()[:2000]  # saved
    assert Service.objects.get(slug="player").repository_url == REPO
    # a new URL replaces it
    c.patch("/api/v1/services/player/", {"repository_url": "https://github.com/a/b.git"})
    assert Service.objects.get(slug="player").repository_url == "https://github.com/a/b.git"


def test_workspace_repository_credentials_redacted_and_kept(alice, squad):
    c = client_for(alice)
    body = {"slug": "net", "owner": squad.slug, "source": "git", "repository_url": REPO}
    assert c.post("/api/v1/workspaces/", body, format="json").json()["repository_url"] == REPO_SHOWN
    for url in ("/api/v1/workspaces/net/", "/infra/net/", "/infra/", "/infra/net/edit"):
        assert TOKEN not in c.get(url).content.decode(), url
    c.patch("/api/v1/workspaces/net/", {"repository_url": REPO_SHOWN}, format="json")
    assert Workspace.objects.get(slug="net").repository_url == REPO


def test_pipeline_clone_log_shows_no_credential(settings, tmp_path, alice, squad):
    settings.WORKSPACE_ROOT = tmp_path / "ws"
    svc = ServiceFactory(slug="player", owner=squad, repository_url=DEAD_REPO)
    PipelineConfig.objects.create(
        service=svc, spec_yaml="stages: [{name: a, steps: [{name: b, run: 'true'}]}]\n"
    )
    run, _ = pipeline_services.trigger_run(svc, actor=Actor(user=alice), ref="main")
    pipeline_runner.execute(run.pk)
    run = PipelineRun.objects.get(pk=run.pk)
    log = pipeline_services.read_log(run, 0, limit=100000)[0]
    assert run.status == "failed" and "127.0.0.1:9" in log  # it tried, and said where
    assert TOKEN not in log and TOKEN not in run.error, log


SECRET = 'p@ss w/rd"é1'


def test_step_output_masks_encoded_forms_of_a_secret():
    forms = {
        "url": quote(SECRET, safe=""),
        "url_path": quote(SECRET),
        "hex": SECRET.encode().hex(),
        "HEX": SECRET.encode().hex().upper(),
        "json": json.dumps(SECRET)[1:-1],
        "json_utf8": json.dumps(SECRET, ensure_ascii=False)[1:-1],
        "in_url": f"https://deploy:{quote(SECRET, safe='')}@example.org/x",
    }
    script = "".join(f"printf '%s\\n' {json.dumps(k + '=' + v)}\n" for k, v in forms.items())
    script = script.replace("$", "\\$")
    chunks = []
    res = run_process(
        ["/bin/sh", "-c", script],
        cwd="/tmp",
        env={"PATH": "/usr/bin:/bin"},
        timeout=30,
        secrets=[SECRET],
        on_output=chunks.append,
    )
    out = "".join(chunks)
    assert res.exit_code == 0, out
    for k, v in forms.items():
        assert f"{k}=" in out and v not in out, (k, out)


def test_credentials_in_any_url_are_masked_in_logs():
    chunks = []
    run_process(
        ["/bin/sh", "-c", "echo 'fatal: could not read https://someone:hunter2xyz@git.example/r'"],
        cwd="/tmp",
        env={"PATH": "/usr/bin:/bin"},
        timeout=30,
        secrets=[],
        on_output=chunks.append,
    )
    out = "".join(chunks)
    assert "hunter2xyz" not in out and "https://***@git.example/r" in out


IMPORTED = f"""\
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: imported-svc
  annotations:
    backstage.io/source-location: url:https://ci-bot:{TOKEN}@github.example/acme/imported/
    backline.io/repository: https://ci-bot:{TOKEN}@github.example/acme/imported.git
spec:
  type: service
  lifecycle: production
  owner: group:default/playback
"""


def test_an_imported_credential_is_not_exported(alice, squad):
    c = client_for(alice)
    resp = c.generic(
        "POST", "/api/v1/catalog/import", IMPORTED.encode(), content_type="application/yaml"
    )
    assert resp.status_code == 200, resp.content
    export = c.get("/api/v1/catalog/export").content.decode()
    assert "imported-svc" in export and TOKEN not in export
    assert "url:https://****@github.example/acme/imported/" in export
    # stored: the repository URL's credential encrypted, the descriptor without it
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "SELECT repository_url, annotations::text, backstage_entity, backstage_seen"
            " FROM squads_service WHERE slug = 'imported-svc'"
        )
        row = cur.fetchone()
    assert row[0].startswith("https://fernet.") and not any(TOKEN in col for col in row), row
    svc = Service.objects.get(slug="imported-svc")
    assert svc.repository_url == f"https://ci-bot:{TOKEN}@github.example/acme/imported.git"
    # importing the same file again changes nothing (the comparison sees the same redaction)
    again = c.generic(
        "POST", "/api/v1/catalog/import", IMPORTED.encode(), content_type="application/yaml"
    )
    assert again.status_code == 200 and again.json()["updated"] in (0, [], {}), again.json()


def test_process_logs_redact_credentials_in_urls():
    import logging

    from portal.logfilters import RedactingFormatter

    handlers = [
        h for h in logging.getLogger().handlers if isinstance(h.formatter, RedactingFormatter)
    ]
    assert handlers, "the root logger's console handler uses the redacting formatter"
    try:
        raise ValueError("cannot fetch https://someone:hunter2xyz@git.example/r")
    except ValueError:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "clone of %s failed", ("https://a:pw9z@h/x",), None
        )
        import sys

        record.exc_info = sys.exc_info()
    line = handlers[0].formatter.format(record)
    assert "pw9z" not in line and "hunter2xyz" not in line and "https://****@h/x" in line


def test_subscription_url_credentials_are_write_only(alice, squad):
    from portal.models import EventSubscription

    c = client_for(alice)
    url = "http://bot:hookPw-0e7d3a51@127.0.0.1:9/hook"
    body = {
        "squad": squad.slug,
        "name": "bot",
        "url": url,
        "secret": "sign-secret-1",
        "event_types": ["catalog.*"],
    }
    created = c.post("/api/v1/event-subscriptions/", body, format="json")
    assert created.status_code == 201, created.content
    shown = created.json()["url"]
    assert shown == "http://****@127.0.0.1:9/hook"
    sub_id = created.json()["id"]
    put = {**body, "url": shown, "name": "bot2"}
    assert c.put(f"/api/v1/event-subscriptions/{sub_id}/", put, format="json").status_code == 200
    assert EventSubscription.objects.get(pk=sub_id).url == url
    texts = [
        c.get("/api/v1/event-subscriptions/").content.decode(),
        c.get("/events/").content.decode(),
        json.dumps(list(AuditEvent.objects.values_list("data", flat=True))),
    ]
    assert not any("hookPw-0e7d3a51" in t for t in texts)
