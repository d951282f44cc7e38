"""Schemathesis against a live server: every operation of the OpenAPI schema, with a token that
may do everything, bounded in time. Zero failures of the four checks below is the bar.

Mutating operations really mutate the test database (that is the point: they reach the domain
code). The hooks module (``tests/st_hooks.py``) reads Backstage's multi-document YAML and feeds
existing ids into half of the path parameters.
"""

import json
import os
import subprocess
import uuid
from pathlib import Path

from django.core.management import call_command

from portal.models import SCOPE_NAMES, ApiToken, EventDelivery, EventSubscription
from tests.live_portal import ROOT, portal_server, schemathesis_argv  # noqa: F401  (fixture)

MAX_TIME = int(os.environ.get("BACKLINE_FUZZ_SECONDS", "120"))


def seed_everything():
    """The demo organisation (catalog, pipelines, releases, monitoring, Terraform) plus the few
    objects it has none of, then the ids the hooks may use."""
    from infra.models import TerraformRun, Variable, Workspace
    from monitoring.models import Alert, AlertRule, NotificationChannel
    from pipelines.models import PipelineRun, PipelineSecret
    from portal.models import AuditEvent
    from releases.models import Environment, Release
    from squads.models import Api, Dependency, Person, Resource, Service, Squad, System, Tribe

    call_command("seed_demo", stdout=open(os.devnull, "w"))
    playback = Squad.objects.get(slug="playback")
    svc = Service.objects.filter(owner=playback).order_by("slug").first()
    PipelineSecret.objects.get_or_create(service=svc, name="FUZZ_SECRET", defaults={"value": "x1"})
    NotificationChannel.objects.get_or_create(
        squad=playback, name="fuzz", kind="webhook", url="http://127.0.0.1:9/alerts"
    )
    rule = AlertRule.objects.first()
    if rule is not None and not Alert.objects.exists():
        Alert.objects.create(rule=rule, service=svc, severity="warning", summary="fuzz")
    sub = EventSubscription.objects.create(
        squad=playback,
        name="fuzz",
        url="http://127.0.0.1:9/hook",
        secret="fuzz-secret-1",
        event_types=["catalog.*"],
    )
    EventDelivery.objects.create(
        subscription=sub,
        delivery_id=uuid.uuid4(),
        event_type="catalog.service.updated",
        payload={"x": 1},
        status="failed",
    )

    def ids(qs, field="pk"):
        return [str(v) for v in qs.values_list(field, flat=True)[:20]]

    return {
        "services": ids(Service.objects.all(), "slug"),
        "squads": ids(Squad.objects.all(), "slug"),
        "tribes": ids(Tribe.objects.all(), "slug"),
        "people": ids(Person.objects.all(), "slug"),
        "systems": ids(System.objects.all(), "slug"),
        "apis": ids(Api.objects.all(), "slug"),
        "resources": ids(Resource.objects.all(), "slug"),
        "dependencies": ids(Dependency.objects.all()),
        "workspaces": ids(Workspace.objects.all(), "slug"),
        "variables": ids(Variable.objects.all()),
        "terraform-runs": ids(TerraformRun.objects.all()),
        "runs": ids(PipelineRun.objects.all()),
        "pipeline-secrets": ids(PipelineSecret.objects.all(), "name"),
        "releases": ids(Release.objects.all()),
        "environments": ids(Environment.objects.all(), "name"),
        "alert-rules": ids(AlertRule.objects.all()),
        "alerts": ids(Alert.objects.all()),
        "alert-channels": ids(NotificationChannel.objects.all()),
        "event-subscriptions": ids(EventSubscription.objects.all()),
        "event-deliveries": ids(EventDelivery.objects.all()),
        "audit": ids(AuditEvent.objects.all()),
        "tokens": ids(ApiToken.objects.all()),
    }


def test_schemathesis_finds_no_failures(portal_server, tmp_path):  # noqa: F811
    from squads.models import Squad

    known = seed_everything()
    token, raw = ApiToken.generate(
        squad=Squad.objects.get(slug="playback"), name="fuzz", scopes=list(SCOPE_NAMES)
    )
    ApiToken.objects.filter(pk=token.pk).update(rate_limit_per_minute=1_000_000)

    env = dict(os.environ)
    env.update(
        SCHEMATHESIS_HOOKS="tests.st_hooks",
        BACKLINE_FUZZ_TOKEN_ID=str(token.pk),
        BACKLINE_FUZZ_IDS=json.dumps(known),
        PYTHONPATH=str(ROOT),
        NO_COLOR="1",
    )
    argv = schemathesis_argv(
        f"{portal_server.url}/api/schema/",
        raw,
        MAX_TIME,
        os.environ.get("BACKLINE_FUZZ_SEED", "20261126"),
        "--report-dir",
        str(tmp_path / "report"),
    )
    proc = subprocess.run(
        argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=MAX_TIME + 150
    )
    out = proc.stdout + proc.stderr
    (Path(portal_server.logfile).with_name("test-fuzz-output.txt")).write_text(out)
    errors = "\n".join(
        line
        for line in portal_server.output(200_000).splitlines()
        if "ERROR" in line or "Error:" in line or 'File "/work' in line
    )
    assert proc.returncode == 0, (
        f"schemathesis exit {proc.returncode}\n{out[-30000:]}\n--- server errors ---\n"
        f"{errors[-8000:]}"
    )
    assert "Tested:" in out, out[-3000:]
    # the token the run used still works (it was not revoked under it)
    assert ApiToken.objects.get(pk=token.pk).revoked_at is None
