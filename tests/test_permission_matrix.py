"""Permission matrix: every mutating endpoint (API and HTML POST) × every persona, exact codes.

Personas: ``member`` (alice, lead of the owning squad ``playback``), ``other`` (bob, member of
``search``), ``viewer`` (charlie, signed in, no squad), ``admin`` (org admin), ``token`` (a
``playback`` token with the scope the endpoint needs), ``token_noscope`` (a ``playback`` token
with every other scope except ``admin``), ``other_token`` (a ``search`` token with the
scope: right scope, wrong squad), ``expired`` (the scoped token, expired), ``anon``, and
``csrf`` (alice's session without the CSRF token: every session POST must be refused).

Each row builds the objects its action needs in the right state, so the allowed cases really
succeed; every case also checks the effect: an allowed action writes its audit event (or the
row's own ``changed`` check holds), a refused one changes nothing. ``test_matrix_covers_...``
fails when an operation of the OpenAPI schema or an HTML URL accepting POST has no row.
The SCIM endpoints (``/scim/v2/``, bearer tokens with the ``scim`` scope only, not in the
OpenAPI schema) have their own matrix: ``tests/identity/test_scim_permissions.py``.
"""

import copy
import inspect
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from infra.models import TerraformRun, Variable, Workspace
from monitoring.models import AlertRule, NotificationChannel
from pipelines.models import Approval, PipelineRun, PipelineSecret, StepRun
from portal.models import SCOPE_NAMES, ApiToken, AuditEvent, EventDelivery, EventSubscription
from releases.models import (
    AnalysisTemplate,
    Environment,
    Release,
    ScaleSchedule,
    StrategyOverride,
)
from squads.models import Dependency, Membership, Squad
from tests.factories import ServiceFactory, SquadFactory, TribeFactory

PERSONAS = [
    "member",
    "other",
    "viewer",
    "admin",
    "token",
    "token_noscope",
    "other_token",
    "expired",
    "anon",
    "csrf",
]
PAUSING = [{"set_weight": 10}, {"pause": {}}, {"set_weight": 30}, {"pause": {}}]
STRATEGY = [{"set_weight": 25}, {"analysis": {"template": "golden-signals"}}, {"set_weight": 100}]
METRICS = [{"name": "errors", "kind": "error_ratio", "max": 0.02}]
SPEC = "stages: [{name: build, steps: [{name: compile, run: 'true'}]}]\n"
MAIN_TF = 'output "hello" {\n  value = "world"\n}\n'


# --- the world every row starts from ------------------------------------------------------------
class World:
    def __init__(self, squad, other_squad, alice, bob, charlie, admin_user):
        self.squad, self.other_squad = squad, other_squad
        self.users = {"member": alice, "other": bob, "viewer": charlie, "admin": admin_user}
        self.svc = ServiceFactory(slug="playback-api", name="Playback API", owner=squad)
        self.other_svc = ServiceFactory(slug="search-api", name="Search API", owner=other_squad)

    # objects, made on demand by the rows
    def run(self, status="running"):
        n = PipelineRun.objects.filter(service=self.svc).count() + 1
        return PipelineRun.objects.create(
            service=self.svc,
            number=n,
            status=status,
            ref="main",
            commit_sha="a" * 40,
            finished_at=None if status in ("queued", "running") else timezone.now(),
        )

    def approval(self):
        """A running run whose step waits for an approval by the owning squad (issue 18)."""
        run = self.run("running")
        step = StepRun.objects.create(
            run=run, stage="deploy", name="gate", kind="approval", status="running"
        )
        Approval.objects.create(run=run, step=step, squad=self.squad)
        return run

    def strategy(self):
        return StrategyOverride.objects.create(service=self.svc, steps=PAUSING)

    def template(self):
        return AnalysisTemplate.objects.create(name="matrix", metrics=METRICS)

    def env(self):
        return Environment.objects.update_or_create(
            name="staging", defaults={"driver": "local", "driver_config": {}}
        )[0]

    def release(self, status="paused"):
        return Release.objects.create(
            service=self.svc,
            environment=self.env(),
            version="1.2.3",
            strategy=PAUSING,
            status=status,
            step_index=1,
            weight=10,
            desired_weight=10,
            started_at=timezone.now(),
            finished_at=None if status in ("paused", "progressing") else timezone.now(),
        )

    def workspace(self, slug="net"):
        return Workspace.objects.create(
            slug=slug, name=slug.title(), owner=self.squad, files={"main.tf": MAIN_TF}
        )

    def tf_run(self, status="planned"):
        ws = self.workspace()
        run = TerraformRun.objects.create(
            workspace=ws,
            number=1,
            status=status,
            planned_at=timezone.now() if status == "planned" else None,
            has_changes=True if status == "planned" else None,
        )
        if status == "planned":
            ws.lock_run = run
            ws.locked_at = timezone.now()
            ws.save(update_fields=["lock_run", "locked_at"])
        return run

    def locked_workspace(self):
        return self.tf_run("planned").workspace

    def variable(self):
        ws = self.workspace()
        return Variable.objects.create(workspace=ws, key="region", value="eu-west-1")

    def rule(self):
        return AlertRule.objects.create(
            service=self.svc, name="errors", signal="error_ratio", threshold=0.05
        )

    def channel(self):
        return NotificationChannel.objects.create(
            squad=self.squad, name="pager", kind="webhook", url="http://127.0.0.1:9/alerts"
        )

    def subscription(self):
        return EventSubscription.objects.create(
            squad=self.squad,
            name="bot",
            url="http://127.0.0.1:9/hook",
            secret="topsecret1",
            event_types=["catalog.*"],
        )

    def delivery(self):
        return EventDelivery.objects.create(
            subscription=self.subscription(),
            delivery_id=uuid.uuid4(),
            event_type="catalog.service.updated",
            payload={"service": "playback-api"},
            status="failed",
        )

    def scalable(self):
        """The service scales through its Terraform capacity variable (no deployer needed: a
        scale records the variable and queues a plan)."""
        ws = Workspace.objects.filter(slug="capacity").first() or self.workspace("capacity")
        Service = type(self.svc)
        Service.objects.filter(pk=self.svc.pk).update(
            annotations={"backline.io/capacity-variable": f"{ws.slug}/replicas"}
        )
        return self.env().name

    def schedule(self):
        return ScaleSchedule.objects.create(
            service=self.svc,
            environment=self.env(),
            cron="0 17 * * 1-5",
            duration_minutes=60,
            replicas=6,
            base_replicas=2,
        )

    def secret(self):
        return PipelineSecret.objects.create(service=self.svc, name="NPM_TOKEN", value="s3cret-1")

    def dependency(self):
        return Dependency.objects.create(source=self.svc, target_service=self.other_svc)

    def bot_token(self):
        return ApiToken.generate(squad=self.squad, name="old-bot", scopes=["catalog:write"])[0]


CATALOG_YAML = """\
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: playback-imported
spec:
  type: service
  lifecycle: production
  owner: group:default/playback
"""

REPARENT_YAML = """\
apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: playback
spec:
  type: team
  parent: group:default/search
  children: []
"""
JOIN_YAML = """\
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: alice
spec:
  memberOf: [group:default/playback, group:default/search]
"""


@dataclass
class Row:
    """One mutating endpoint. ``key`` is "METHOD route": the OpenAPI path for the API, the URL
    pattern for HTML. ``make(w)`` builds what the action needs and returns ``(url, data)``."""

    key: str
    scope: str
    make: Callable
    ok: int  # the allowed answer
    html: bool = False
    fmt: str = "json"
    deny: int | None = None  # refused person (other squad / viewer); default 403
    deny_viewer: int | None = None
    changed: Callable | None = None  # (w, ctx) -> bool; default: an audit event was written
    admin_only: bool = False  # org admins (or an 'admin' token) only
    anon: int | None = None  # HTML default 302 to /login/, API 401
    notes: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def method(self):
        return self.key.split(" ", 1)[0].lower()

    @property
    def route(self):
        return self.key.split(" ", 1)[1]


def _api(key, scope, make, ok, **kw):
    return Row(key=key, scope=scope, make=make, ok=ok, **kw)


def _html(key, scope, make, ok=302, deny=403, **kw):
    """HTML forms answer a refusal as the API does: 403 (the "Not allowed" page, or the form
    page again, with the reason; ``portal.web``); ``changed`` proves nothing happened."""
    return Row(key=key, scope=scope, make=make, ok=ok, deny=deny, html=True, fmt="multipart", **kw)


A = "/api/v1"


def _svc_body(w):
    return {"slug": "playback-new", "name": "Playback New", "owner": "playback"}


API_ROWS = [
    # catalog
    _api(
        "POST /api/v1/services/", "catalog:write", lambda w: (f"{A}/services/", _svc_body(w)), 201
    ),
    _api(
        "PUT /api/v1/services/{slug}/",
        "catalog:write",
        lambda w: (
            f"{A}/services/playback-api/",
            {"slug": "playback-api", "name": "Playback API v2", "owner": "playback"},
        ),
        200,
    ),
    _api(
        "PATCH /api/v1/services/{slug}/",
        "catalog:write",
        lambda w: (f"{A}/services/playback-api/", {"description": "Streams audio"}),
        200,
    ),
    _api(
        "DELETE /api/v1/services/{slug}/",
        "catalog:write",
        lambda w: (f"{A}/services/playback-api/", None),
        204,
    ),
    _api(
        "PUT /api/v1/squads/{slug}/",
        "catalog:write",
        lambda w: (f"{A}/squads/playback/", {"name": "Playback", "mission": "Play it all"}),
        200,
    ),
    _api(
        "PATCH /api/v1/squads/{slug}/",
        "catalog:write",
        lambda w: (f"{A}/squads/playback/", {"mission": "Play everything"}),
        200,
    ),
    _api(
        "POST /api/v1/dependencies/",
        "catalog:write",
        lambda w: (
            f"{A}/dependencies/",
            {"source": "playback-api", "target_service": "search-api"},
        ),
        201,
    ),
    _api(
        "DELETE /api/v1/dependencies/{id}/",
        "catalog:write",
        lambda w: (f"{A}/dependencies/{w.dependency().pk}/", None),
        204,
    ),
    _api(
        "POST /api/v1/catalog/import",
        "catalog:write",
        lambda w: (f"{A}/catalog/import", CATALOG_YAML),
        200,
        fmt="yaml",
    ),
    # imports obey the API's ownership rules (issue 14): a squad cannot move itself under
    # another team or tribe, nor join a person to another squad, through a Backstage import
    _api(
        "POST /api/v1/catalog/import [re-parent a squad]",
        "admin",
        lambda w: (f"{A}/catalog/import", REPARENT_YAML),
        200,
        fmt="yaml",
        admin_only=True,
        changed=lambda w, ctx: Squad.objects.get(slug="playback").parent_id == w.other_squad.pk,
        notes="the API has no parent/tribe field; an import moving a team is org admins' only",
    ),
    _api(
        "POST /api/v1/catalog/import [join another squad]",
        "admin",
        lambda w: (f"{A}/catalog/import", JOIN_YAML),
        200,
        fmt="yaml",
        admin_only=True,
        changed=lambda w, ctx: Membership.objects.filter(
            person__slug="alice", squad=w.other_squad
        ).exists(),
        notes="a membership of another squad needs catalog:write there",
    ),
    # tokens and events
    _api(
        "POST /api/v1/tokens/",
        "admin",
        lambda w: (f"{A}/tokens/", {"squad": "playback", "name": "ci", "scopes": []}),
        201,
        notes="people: squad members and admins; tokens: 'admin' scope only",
    ),
    _api(
        "POST /api/v1/tokens/{id}/revoke/",
        "admin",
        lambda w: (f"{A}/tokens/{w.bot_token().pk}/revoke/", None),
        200,
        deny=404,
        notes="other squads' tokens are invisible (404)",
    ),
    _api(
        "POST /api/v1/event-subscriptions/",
        "catalog:write",
        lambda w: (
            f"{A}/event-subscriptions/",
            {
                "squad": "playback",
                "name": "bot",
                "url": "http://127.0.0.1:9/hook",
                "secret": "topsecret1",
                "event_types": ["catalog.*"],
            },
        ),
        201,
    ),
    _api(
        "PUT /api/v1/event-subscriptions/{id}/",
        "catalog:write",
        lambda w: (
            f"{A}/event-subscriptions/{w.subscription().pk}/",
            {
                "squad": "playback",
                "name": "bot2",
                "url": "http://127.0.0.1:9/hook2",
                "secret": "topsecret2",
                "event_types": ["pipeline.*"],
            },
        ),
        200,
        deny=404,
        notes="other squads' subscriptions are invisible (404)",
    ),
    _api(
        "PATCH /api/v1/event-subscriptions/{id}/",
        "catalog:write",
        lambda w: (f"{A}/event-subscriptions/{w.subscription().pk}/", {"name": "renamed"}),
        200,
        deny=404,
    ),
    _api(
        "DELETE /api/v1/event-subscriptions/{id}/",
        "catalog:write",
        lambda w: (f"{A}/event-subscriptions/{w.subscription().pk}/", None),
        204,
        deny=404,
    ),
    _api(
        "POST /api/v1/event-deliveries/{id}/redeliver/",
        "catalog:write",
        lambda w: (f"{A}/event-deliveries/{w.delivery().pk}/redeliver/", None),
        201,
        deny=404,
    ),
    # pipelines
    _api(
        "POST /api/v1/services/{slug}/runs/",
        "pipelines:run",
        lambda w: (f"{A}/services/playback-api/runs/", {"ref": "main"}),
        201,
    ),
    _api(
        "POST /api/v1/runs/{id}/cancel/",
        "pipelines:run",
        lambda w: (f"{A}/runs/{w.run('running').pk}/cancel/", None),
        202,
    ),
    _api(
        "POST /api/v1/runs/{id}/approve/",
        "pipelines:run",
        lambda w: (f"{A}/runs/{w.approval().pk}/approve/", {"comment": "ship it"}),
        200,
    ),
    _api(
        "POST /api/v1/runs/{id}/reject/",
        "pipelines:run",
        lambda w: (f"{A}/runs/{w.approval().pk}/reject/", None),
        200,
    ),
    _api(
        "POST /api/v1/runs/{id}/rerun/",
        "pipelines:run",
        lambda w: (f"{A}/runs/{w.run('failed').pk}/rerun/", None),
        201,
    ),
    _api(
        "POST /api/v1/services/{slug}/pipeline-secrets/",
        "pipelines:run",
        lambda w: (
            f"{A}/services/playback-api/pipeline-secrets/",
            {"name": "NPM_TOKEN", "value": "s3cret-1"},
        ),
        201,
    ),
    _api(
        "DELETE /api/v1/services/{slug}/pipeline-secrets/{name}/",
        "pipelines:run",
        lambda w: (f"{A}/services/playback-api/pipeline-secrets/{w.secret().name}/", None),
        204,
    ),
    _api(
        "PUT /api/v1/services/{slug}/pipeline-spec/",
        "pipelines:run",
        lambda w: (f"{A}/services/playback-api/pipeline-spec/", {"spec": SPEC}),
        200,
    ),
    # releases
    _api(
        "POST /api/v1/releases/",
        "releases:promote",
        lambda w: (
            f"{A}/releases/",
            {"service": "playback-api", "version": "2.0.0", "environment": w.env().name},
        ),
        201,
    ),
    _api(
        "POST /api/v1/releases/{id}/promote/",
        "releases:promote",
        lambda w: (f"{A}/releases/{w.release().pk}/promote/", {}),
        200,
    ),
    _api(
        "POST /api/v1/releases/{id}/promote-full/",
        "releases:promote",
        lambda w: (f"{A}/releases/{w.release().pk}/promote-full/", None),
        200,
    ),
    _api(
        "POST /api/v1/releases/{id}/abort/",
        "releases:promote",
        lambda w: (f"{A}/releases/{w.release().pk}/abort/", {"reason": "matrix"}),
        200,
    ),
    _api(
        "POST /api/v1/releases/{id}/retry/",
        "releases:promote",
        lambda w: (f"{A}/releases/{w.release('aborted').pk}/retry/", None),
        200,
    ),
    # scaling (issue 17)
    _api(
        "POST /api/v1/services/{slug}/scale/",
        "scaling:write",
        lambda w: (
            f"{A}/services/playback-api/scale",
            {"environment": w.scalable(), "replicas": 3},
        ),
        201,
    ),
    _api(
        "POST /api/v1/services/{slug}/schedules/",
        "scaling:write",
        lambda w: (
            f"{A}/services/playback-api/schedules",
            {
                "environment": w.scalable(),
                "cron": "0 17 * * 1-5",
                "duration_minutes": 60,
                "timezone": "Europe/Stockholm",
                "replicas": 6,
                "base_replicas": 2,
            },
        ),
        201,
    ),
    _api(
        "DELETE /api/v1/services/{slug}/schedules/{id}/",
        "scaling:write",
        lambda w: (f"{A}/services/playback-api/schedules/{w.schedule().pk}", None),
        204,
    ),
    _api(
        "POST /api/v1/release-strategies/",
        "releases:promote",
        lambda w: (f"{A}/release-strategies/", {"service": "playback-api", "steps": STRATEGY}),
        201,
    ),
    _api(
        "PUT /api/v1/release-strategies/{id}/",
        "releases:promote",
        lambda w: (
            f"{A}/release-strategies/{w.strategy().pk}/",
            {"service": "playback-api", "environment": None, "steps": STRATEGY},
        ),
        200,
    ),
    _api(
        "PATCH /api/v1/release-strategies/{id}/",
        "releases:promote",
        lambda w: (f"{A}/release-strategies/{w.strategy().pk}/", {"steps": STRATEGY}),
        200,
    ),
    _api(
        "DELETE /api/v1/release-strategies/{id}/",
        "releases:promote",
        lambda w: (f"{A}/release-strategies/{w.strategy().pk}/", None),
        204,
    ),
    _api(
        "POST /api/v1/analysis-templates/",
        "admin",
        lambda w: (f"{A}/analysis-templates/", {"name": "matrix", "metrics": METRICS}),
        201,
        admin_only=True,
    ),
    _api(
        "PUT /api/v1/analysis-templates/{name}/",
        "admin",
        lambda w: (
            f"{A}/analysis-templates/{w.template().name}/",
            {"name": "matrix", "description": "changed", "metrics": METRICS},
        ),
        200,
        admin_only=True,
    ),
    _api(
        "PATCH /api/v1/analysis-templates/{name}/",
        "admin",
        lambda w: (f"{A}/analysis-templates/{w.template().name}/", {"description": "changed"}),
        200,
        admin_only=True,
    ),
    _api(
        "DELETE /api/v1/analysis-templates/{name}/",
        "admin",
        lambda w: (f"{A}/analysis-templates/{w.template().name}/", None),
        204,
        admin_only=True,
    ),
    # infrastructure
    _api(
        "POST /api/v1/workspaces/",
        "infra:apply",
        lambda w: (
            f"{A}/workspaces/",
            {"slug": "net2", "owner": "playback", "files": {"main.tf": MAIN_TF}},
        ),
        201,
    ),
    _api(
        "PUT /api/v1/workspaces/{slug}/",
        "infra:apply",
        lambda w: (
            f"{A}/workspaces/{w.workspace().slug}/",
            {"slug": "net", "name": "Net 2", "owner": "playback", "files": {"main.tf": MAIN_TF}},
        ),
        200,
    ),
    _api(
        "PATCH /api/v1/workspaces/{slug}/",
        "infra:apply",
        lambda w: (f"{A}/workspaces/{w.workspace().slug}/", {"description": "the network"}),
        200,
    ),
    _api(
        "POST /api/v1/workspaces/{slug}/force-unlock/",
        "admin",
        lambda w: (f"{A}/workspaces/{w.locked_workspace().slug}/force-unlock/", None),
        200,
        admin_only=True,
    ),
    _api(
        "POST /api/v1/workspaces/{slug}/runs/",
        "infra:apply",
        lambda w: (f"{A}/workspaces/{w.workspace().slug}/runs/", {"message": "matrix"}),
        201,
    ),
    _api(
        "POST /api/v1/workspaces/{slug}/variables/",
        "infra:apply",
        lambda w: (
            f"{A}/workspaces/{w.workspace().slug}/variables/",
            {"key": "region", "value": "eu-north-1", "category": "terraform"},
        ),
        201,
    ),
    _api(
        "PATCH /api/v1/workspaces/{slug}/variables/{var_id}/",
        "infra:apply",
        lambda w: (
            (v := w.variable()) and f"{A}/workspaces/{v.workspace.slug}/variables/{v.pk}/",
            {"value": "us-east-1"},
        ),
        200,
    ),
    _api(
        "DELETE /api/v1/workspaces/{slug}/variables/{var_id}/",
        "infra:apply",
        lambda w: (
            (v := w.variable()) and f"{A}/workspaces/{v.workspace.slug}/variables/{v.pk}/",
            None,
        ),
        204,
    ),
    _api(
        "POST /api/v1/terraform-runs/{id}/apply/",
        "infra:apply",
        lambda w: (f"{A}/terraform-runs/{w.tf_run('planned').pk}/apply/", None),
        200,
    ),
    _api(
        "POST /api/v1/terraform-runs/{id}/discard/",
        "infra:apply",
        lambda w: (f"{A}/terraform-runs/{w.tf_run('planned').pk}/discard/", {"reason": "no"}),
        200,
    ),
    _api(
        "POST /api/v1/terraform-runs/{id}/cancel/",
        "infra:apply",
        lambda w: (f"{A}/terraform-runs/{w.tf_run('pending').pk}/cancel/", None),
        200,
    ),
    # alerts
    _api(
        "POST /api/v1/alert-rules/",
        "alerts:write",
        lambda w: (
            f"{A}/alert-rules/",
            {
                "service": "playback-api",
                "name": "errors",
                "signal": "error_ratio",
                "comparison": ">",
                "threshold": 0.05,
            },
        ),
        201,
    ),
    _api(
        "PUT /api/v1/alert-rules/{id}/",
        "alerts:write",
        lambda w: (
            f"{A}/alert-rules/{w.rule().pk}/",
            {
                "service": "playback-api",
                "name": "errors",
                "signal": "error_ratio",
                "comparison": ">",
                "threshold": 0.1,
            },
        ),
        200,
    ),
    _api(
        "PATCH /api/v1/alert-rules/{id}/",
        "alerts:write",
        lambda w: (f"{A}/alert-rules/{w.rule().pk}/", {"threshold": 0.2}),
        200,
    ),
    _api(
        "DELETE /api/v1/alert-rules/{id}/",
        "alerts:write",
        lambda w: (f"{A}/alert-rules/{w.rule().pk}/", None),
        204,
    ),
    _api(
        "POST /api/v1/alert-channels/",
        "alerts:write",
        lambda w: (
            f"{A}/alert-channels/",
            {
                "squad": "playback",
                "name": "pager",
                "kind": "webhook",
                "url": "http://127.0.0.1:9/alerts",
            },
        ),
        201,
    ),
    _api(
        "DELETE /api/v1/alert-channels/{id}/",
        "alerts:write",
        lambda w: (f"{A}/alert-channels/{w.channel().pk}/", None),
        204,
    ),
]


HTML_ROWS = [
    # portal
    _html(
        "POST tokens/",
        "catalog:write",
        lambda w: ("/tokens/", {"squad": "playback", "name": "ci", "expires_in_days": ""}),
        ok=200,
        changed=lambda w, ctx: ApiToken.objects.filter(name="ci").exists(),
    ),
    _html(
        "POST tokens/<int:pk>/revoke",
        "catalog:write",
        lambda w: (f"/tokens/{w.bot_token().pk}/revoke", {}),
    ),
    _html(
        "POST events/",
        "catalog:write",
        lambda w: (
            "/events/",
            {
                "squad": "playback",
                "name": "bot",
                "url": "http://127.0.0.1:9/hook",
                "secret": "topsecret1",
                "event_types": ["catalog.*"],
            },
        ),
    ),
    _html(
        "POST events/deliveries/<int:pk>/redeliver",
        "catalog:write",
        lambda w: (f"/events/deliveries/{w.delivery().pk}/redeliver", {}),
    ),
    # catalog
    _html(
        "POST catalog/import/",
        "catalog:write",
        lambda w: ("/catalog/import/", {"yaml": CATALOG_YAML}),
        ok=200,
    ),
    _html(
        "POST services/<entity:slug>/edit/",
        "catalog:write",
        lambda w: (
            "/services/playback-api/edit/",
            {
                "name": "Playback API",
                "description": "Streams audio",
                "type": "service",
                "lifecycle": "production",
                "tier": "2",
                "default_branch": "main",
                "owner": str(w.squad.pk),
                "tags_text": "audio",
            },
        ),
    ),
    # pipelines
    _html(
        "POST pipelines/runs/<int:pk>/cancel",
        "pipelines:run",
        lambda w: (f"/pipelines/runs/{w.run('running').pk}/cancel", {}),
    ),
    _html(
        "POST pipelines/runs/<int:pk>/approve",
        "pipelines:run",
        lambda w: (f"/pipelines/runs/{w.approval().pk}/approve", {"comment": "ok"}),
    ),
    _html(
        "POST pipelines/runs/<int:pk>/reject",
        "pipelines:run",
        lambda w: (f"/pipelines/runs/{w.approval().pk}/reject", {}),
    ),
    _html(
        "POST pipelines/runs/<int:pk>/rerun",
        "pipelines:run",
        lambda w: (f"/pipelines/runs/{w.run('failed').pk}/rerun", {}),
    ),
    _html(
        "POST pipelines/services/<entity:slug>/run",
        "pipelines:run",
        lambda w: ("/pipelines/services/playback-api/run", {"ref": "main"}),
    ),
    _html(
        "POST pipelines/services/<entity:slug>/spec",
        "pipelines:run",
        lambda w: ("/pipelines/services/playback-api/spec", {"spec": SPEC}),
    ),
    _html(
        "POST pipelines/services/<entity:slug>/secrets",
        "pipelines:run",
        lambda w: (
            "/pipelines/services/playback-api/secrets",
            {"name": "NPM_TOKEN", "value": "s3cret-1"},
        ),
    ),
    _html(
        "POST pipelines/services/<entity:slug>/secrets/<str:name>/delete",
        "pipelines:run",
        lambda w: (f"/pipelines/services/playback-api/secrets/{w.secret().name}/delete", {}),
    ),
    # releases
    _html(
        "POST releases/services/<entity:slug>/start",
        "releases:promote",
        lambda w: (
            "/releases/services/playback-api/start",
            {"environment": w.env().name, "version": "2.0.0"},
        ),
    ),
    _html(
        "POST releases/services/<entity:slug>/scale",
        "scaling:write",
        lambda w: (
            "/releases/services/playback-api/scale",
            {"environment": w.scalable(), "replicas": 3},
        ),
    ),
    _html(
        "POST releases/services/<entity:slug>/schedules",
        "scaling:write",
        lambda w: (
            "/releases/services/playback-api/schedules",
            {
                "environment": w.scalable(),
                "cron": "0 17 * * 1-5",
                "duration_minutes": "60",
                "timezone": "UTC",
                "replicas": "6",
                "base_replicas": "2",
            },
        ),
    ),
    _html(
        "POST releases/services/<entity:slug>/schedules/<int:pk>/delete",
        "scaling:write",
        lambda w: (f"/releases/services/playback-api/schedules/{w.schedule().pk}/delete", {}),
    ),
    _html(
        "POST releases/<int:pk>/promote",
        "releases:promote",
        lambda w: (f"/releases/{w.release().pk}/promote", {}),
    ),
    _html(
        "POST releases/<int:pk>/promote-full",
        "releases:promote",
        lambda w: (f"/releases/{w.release().pk}/promote-full", {}),
    ),
    _html(
        "POST releases/<int:pk>/abort",
        "releases:promote",
        lambda w: (f"/releases/{w.release().pk}/abort", {}),
    ),
    _html(
        "POST releases/<int:pk>/retry",
        "releases:promote",
        lambda w: (f"/releases/{w.release('aborted').pk}/retry", {}),
    ),
    # infrastructure
    _html(
        "POST infra/new",
        "infra:apply",
        lambda w: (
            "/infra/new",
            {
                "slug": "net2",
                "name": "Net 2",
                "owner": "playback",
                "source": "stored",
                "main_tf": MAIN_TF,
            },
        ),
    ),
    _html(
        "POST infra/<slug:slug>/edit",
        "infra:apply",
        lambda w: (
            f"/infra/{w.workspace().slug}/edit",
            {
                "slug": "net",
                "name": "Net 2",
                "owner": "playback",
                "source": "stored",
                "main_tf": MAIN_TF,
            },
        ),
    ),
    _html(
        "POST infra/<slug:slug>/plan",
        "infra:apply",
        lambda w: (f"/infra/{w.workspace().slug}/plan", {"message": "matrix"}),
    ),
    _html(
        "POST infra/<slug:slug>/drift-check",
        "infra:apply",
        lambda w: (f"/infra/{w.workspace().slug}/drift-check", {}),
    ),
    _html(
        "POST infra/<slug:slug>/unlock",
        "admin",
        lambda w: (f"/infra/{w.locked_workspace().slug}/unlock", {}),
        admin_only=True,
    ),
    _html(
        "POST infra/<slug:slug>/variables",
        "infra:apply",
        lambda w: (
            f"/infra/{w.workspace().slug}/variables",
            {"key": "region", "value": "eu-north-1", "category": "terraform"},
        ),
    ),
    _html(
        "POST infra/<slug:slug>/variables/<int:pk>/delete",
        "infra:apply",
        lambda w: (
            (v := w.variable()) and f"/infra/{v.workspace.slug}/variables/{v.pk}/delete",
            {},
        ),
    ),
    _html(
        "POST infra/runs/<int:pk>/apply",
        "infra:apply",
        lambda w: (f"/infra/runs/{w.tf_run('planned').pk}/apply", {}),
    ),
    _html(
        "POST infra/runs/<int:pk>/discard",
        "infra:apply",
        lambda w: (f"/infra/runs/{w.tf_run('planned').pk}/discard", {"reason": "no"}),
    ),
    _html(
        "POST infra/runs/<int:pk>/cancel",
        "infra:apply",
        lambda w: (f"/infra/runs/{w.tf_run('pending').pk}/cancel", {}),
    ),
    # alerts
    _html(
        "POST dashboards/services/<entity:slug>/rules",
        "alerts:write",
        lambda w: (
            "/dashboards/services/playback-api/rules",
            {
                "name": "errors",
                "signal": "error_ratio",
                "track": "stable",
                "comparison": ">",
                "threshold": "0.05",
                "window_seconds": "60",
                "for_seconds": "0",
                "severity": "warning",
            },
        ),
    ),
    _html(
        "POST alerts/rules/<int:pk>/delete",
        "alerts:write",
        lambda w: (f"/alerts/rules/{w.rule().pk}/delete", {}),
    ),
    _html(
        "POST alerts/channels/",
        "alerts:write",
        lambda w: (
            "/alerts/channels/",
            {
                "squad": "playback",
                "name": "pager",
                "kind": "webhook",
                "url": "http://127.0.0.1:9/alerts",
                "min_severity": "info",
            },
        ),
    ),
]

# How each HTML form answers a refusal when not 403 (the Forbidden page of ``portal.web``).
HTML_DENY = {
    "POST catalog/import/": 200,
    "POST infra/new": 200,  # the form again: the owner must be one of the person's squads
    "POST infra/<slug:slug>/edit": 200,
    "POST alerts/channels/": 302,  # the form offers only the person's squads: back with the reason
}
# Release buttons are HTMX: no session answers 401 (a redirect would be swapped into the page).
HTML_NO_SESSION = {k: 401 for k in (r.key for r in HTML_ROWS) if k.startswith("POST releases/")}
for _row in HTML_ROWS:
    _row.deny = HTML_DENY.get(_row.key, _row.deny)
    _row.anon = HTML_NO_SESSION.get(_row.key)

# HTML routes that accept POST but are not actions on a squad's things, and why.
HTML_EXEMPT = {
    "POST logout/": "sign-out: ends the caller's own session (CSRF-protected; tests/identity)",
    "POST login/": "the password sign-in form, behind the brute-force guard (tests/identity)",
    "POST hooks/github": "inbound GitHub webhook: HMAC-signed, no session (tests/pipelines)",
    "POST hooks/github/": "same view as hooks/github",
    "POST hooks/terraform": "inbound Terraform repository webhook: HMAC-signed, no session",
}

ROWS = {r.key: r for r in API_ROWS + HTML_ROWS}


# --- expected answers ---------------------------------------------------------------------------
def expected(row: Row, persona: str) -> tuple[int, bool]:
    """(status code, whether the action takes effect)."""
    if row.html:
        if persona in ("token", "token_noscope", "other_token", "expired", "anon"):
            return (row.anon or 302), False  # HTML uses sessions: a bearer token is no one
        if persona == "csrf":
            return 403, False
    else:
        if persona in ("expired", "anon"):
            return 401, False
        if persona == "csrf":
            return 403, False
        if persona == "token":
            return row.ok, True
        if persona == "token_noscope":
            return 403, False
        if persona == "other_token":
            if row.scope == "admin":  # an 'admin' token acts for the organisation
                return row.ok, True
            return (row.deny or 403), False
    if persona == "admin":
        return row.ok, True
    if persona == "member":
        if row.admin_only:
            return (row.deny_viewer or row.deny or 403), False
        return row.ok, True
    if persona == "viewer":
        return (row.deny_viewer or row.deny or 403), False
    return (row.deny or 403), False  # other


# --- fixtures -----------------------------------------------------------------------------------
FAST_HASHER = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    # PBKDF2 for a user a test makes itself would cost a quarter of a second
    settings.PASSWORD_HASHERS = FAST_HASHER


@pytest.fixture(scope="module")
def pristine_world(django_db_setup, django_db_blocker):
    """The personas, squads and services every row starts from, written once for the module
    (about fifteen rows: rebuilt per case they took half of its time) in a transaction that is
    rolled back when the module ends. Each test runs inside it in its own savepoint (the ``db``
    fixture's atomic block, nested), so whatever a case writes or deletes is undone after it."""
    from django.db import transaction
    from django.test import override_settings

    from tests.conftest import _person_user

    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer._from_testcase = True  # as Django's class-level atomic: durable blocks nest in it
        outer.__enter__()
        with override_settings(PASSWORD_HASHERS=FAST_HASHER):
            tribe = TribeFactory(slug="audio", name="Audio")
            squad = SquadFactory(slug="playback", name="Playback", tribe=tribe)
            other_squad = SquadFactory(slug="search", name="Search", tribe=tribe)
            alice = _person_user("alice", squad, role="lead")
            bob = _person_user("bob", other_squad)
            charlie = _person_user("charlie")
            admin_user = _person_user("admin", is_staff=True, is_superuser=True)
            pristine = World(squad, other_squad, alice, bob, charlie, admin_user)
    yield pristine
    with django_db_blocker.unblock():
        transaction.set_rollback(True)
        outer.__exit__(None, None, None)


@pytest.fixture
def world(pristine_world, db, settings, tmp_path):
    settings.WORKSPACE_ROOT = tmp_path / "workspaces"
    settings.CELERY_TASK_ALWAYS_EAGER = False
    # a copy of the instances per test (as Django's setUpTestData): a case that changes one in
    # memory leaves the next case the rows as they are in the database
    return copy.deepcopy(pristine_world)


def client_as(world, row, persona):
    if persona == "csrf":
        c = APIClient(enforce_csrf_checks=True)
        c.force_login(world.users["member"])
        return c
    c = APIClient()
    if persona in world.users:
        c.force_login(world.users[persona])
        return c
    if persona == "anon":
        return c
    scopes = [row.scope]
    expires = None
    if persona == "token_noscope":
        scopes = [s for s in SCOPE_NAMES if s not in (row.scope, "admin")]
    if persona == "expired":
        expires = timezone.now() - timedelta(minutes=1)
    squad = world.other_squad if persona == "other_token" else world.squad
    _, raw = ApiToken.generate(
        squad=squad, name=f"matrix-{persona}", scopes=scopes, expires_at=expires
    )
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return c


def _send(client, row, url, data):
    if row.html:
        return client.post(url, data or {})
    if row.fmt == "yaml":
        return client.generic(
            row.method.upper(), url, data.encode(), content_type="application/yaml"
        )
    return getattr(client, row.method)(url, data, format="json")


CASES = [(k, p) for k in ROWS for p in PERSONAS]


@pytest.mark.parametrize("key,persona", CASES, ids=[f"{k} | {p}" for k, p in CASES])
def test_permission_matrix(world, key, persona):
    row = ROWS[key]
    url, data = row.make(world)
    client = client_as(world, row, persona)
    audit_before = AuditEvent.objects.count()
    ctx = {"audit_before": audit_before}
    resp = _send(client, row, url, data)
    want_code, want_effect = expected(row, persona)
    body = resp.content[:600].decode("utf-8", "replace")
    assert resp.status_code == want_code, (
        f"{key} as {persona}: {resp.status_code}, expected {want_code}\n{body}"
    )
    if (
        row.html
        and want_code == 302
        and persona in ("token", "token_noscope", "other_token", "expired", "anon")
    ):
        assert resp["Location"].startswith("/login/"), resp["Location"]
    if row.changed is not None:
        effect = row.changed(world, ctx)
    else:
        effect = AuditEvent.objects.count() > audit_before
    assert effect == want_effect, (
        f"{key} as {persona}: effect {effect}, expected {want_effect} (code {resp.status_code})"
        f"\n{body}"
    )


# --- nothing slips through ----------------------------------------------------------------------
def _schema_operations():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    ops = set()
    for path, item in schema["paths"].items():
        for method in item:
            if method in ("post", "put", "patch", "delete"):
                ops.add(f"{method.upper()} {path}")
    return ops


def _walk(patterns, prefix=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern), p


POST_MARKERS = re.compile(
    r"require_POST|require_http_methods|request\.method\s*==\s*[\"']POST|request\.POST"
    r"|request\.FILES|def post\b|def form_valid\b"
)


def _html_post_routes():
    routes = set()
    for route, pattern in _walk(get_resolver().url_patterns):
        if route.startswith(("api/", "admin/")):
            continue
        view = pattern.callback
        target = getattr(view, "view_class", None) or view
        try:
            src = inspect.getsource(target)
        except (OSError, TypeError):
            src = ""
        if getattr(view, "view_class", None) is not None:
            # class-based: any post() in its MRO (LoginView/LogoutView's come from Django)
            if any("post" in vars(k) for k in view.view_class.__mro__ if k is not object):
                routes.add(f"POST {route}")
            continue
        if POST_MARKERS.search(src):
            routes.add(f"POST {route}")
    return routes


def test_matrix_covers_every_mutating_api_operation():
    missing = sorted(_schema_operations() - set(ROWS))
    assert not missing, "mutating API operations with no row in the permission matrix:\n" + (
        "\n".join(missing)
    )


def test_matrix_covers_every_html_post():
    routes = _html_post_routes()
    assert "POST services/<entity:slug>/edit/" in routes  # the detector sees form views
    missing = sorted(routes - set(ROWS) - set(HTML_EXEMPT))
    assert not missing, "HTML URLs accepting POST with no row in the permission matrix:\n" + (
        "\n".join(missing)
    )
    stale = sorted(k for k in ROWS if ROWS[k].html and k not in routes)
    assert not stale, f"matrix rows for routes that no longer accept POST: {stale}"


# --- moving things between squads needs the right on both sides ---------------------------------
@pytest.mark.parametrize("method", ["put", "patch"])
def test_a_subscription_cannot_be_moved_to_a_squad_the_actor_does_not_belong_to(
    world, method, make_token
):
    sub = world.subscription()
    body = {"squad": "search"}
    if method == "put":
        body.update(name="bot", url=sub.url, secret="topsecret1", event_types=["catalog.*"])
    c = APIClient()
    c.force_login(world.users["member"])
    resp = getattr(c, method)(f"/api/v1/event-subscriptions/{sub.pk}/", body, format="json")
    assert resp.status_code == 403, resp.content
    token = APIClient()
    token.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(world.squad, ['catalog:write'])}")
    resp = getattr(token, method)(f"/api/v1/event-subscriptions/{sub.pk}/", body, format="json")
    assert resp.status_code == 403, resp.content
    sub.refresh_from_db()
    assert sub.squad_id == world.squad.pk
    admin = APIClient()
    admin.force_login(world.users["admin"])
    resp = getattr(admin, method)(f"/api/v1/event-subscriptions/{sub.pk}/", body, format="json")
    assert resp.status_code == 200, resp.content
    sub.refresh_from_db()
    assert sub.squad_id == world.other_squad.pk


@pytest.mark.parametrize(
    "url,body",
    [
        ("/api/v1/services/playback-api/", {"owner": "search"}),
        ("/api/v1/workspaces/net/", {"owner": "search"}),
    ],
)
def test_handing_a_service_or_workspace_to_another_squad_needs_that_squad(world, url, body):
    world.workspace()
    c = APIClient()
    c.force_login(world.users["member"])
    assert c.patch(url, body, format="json").status_code == 403
    bob = APIClient()
    bob.force_login(world.users["other"])
    assert bob.patch(url, body, format="json").status_code == 403


# --- a job acts for its starter: the release a pipeline's ``release:`` step starts ---------------
RELEASE_SPEC = (
    "stages: [{name: deploy, steps: [{name: canary, timeout: 1,"
    " release: {environment: staging, version: '9.9.9'}}]}]\n"
)
# persona, the token's scopes (None: a person), what happens between trigger and step, allowed
PIPELINE_RELEASE = [
    ("member", None, None, True),
    ("admin", None, None, True),
    ("token", ["pipelines:run", "releases:promote"], None, True),
    ("token_noscope", ["pipelines:run"], None, False),
    ("token_revoked", ["pipelines:run", "releases:promote"], "revoke", False),
    ("member_left", None, "leave", False),
    ("push", None, None, True),  # a verified push acts for the owning squad
]


def _pipeline_release_run(world, persona, scopes, between):
    from pipelines import runner
    from pipelines.models import PipelineConfig
    from squads.models import Membership

    PipelineConfig.objects.create(service=world.svc, spec_yaml=RELEASE_SPEC)
    world.env()
    if persona == "push":
        from pipelines import services as pipeline_services
        from portal.actors import Actor

        push = Actor(door="webhook", system_name="github:octocat")
        run, _ = pipeline_services.trigger_run(world.svc, actor=push, ref="main", trigger="push")
        runner.execute(run.pk)
        return PipelineRun.objects.get(pk=run.pk)
    c = APIClient()
    token = None
    if scopes is None:
        c.force_login(world.users["admin" if persona == "admin" else "member"])
    else:
        token, raw = ApiToken.generate(squad=world.squad, name=f"pr-{persona}", scopes=scopes)
        c.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    resp = c.post(f"{A}/services/playback-api/runs/", {"ref": "main"}, format="json")
    assert resp.status_code == 201, resp.content  # every one of them may run the pipeline
    run = PipelineRun.objects.get(pk=resp.json()["id"])
    if between == "revoke":
        ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
    if between == "leave":
        Membership.objects.filter(person__user=world.users["member"]).delete()
    runner.execute(run.pk)  # the worker, here
    return PipelineRun.objects.get(pk=run.pk)


@pytest.mark.parametrize(
    "persona,scopes,between,allowed", PIPELINE_RELEASE, ids=[p[0] for p in PIPELINE_RELEASE]
)
def test_matrix_pipeline_started_release(world, persona, scopes, between, allowed):
    run = _pipeline_release_run(world, persona, scopes, between)
    kinds = {"push": "webhook"}
    assert run.started_by_kind == kinds.get(persona, "user" if scopes is None else "token")
    release = Release.objects.filter(pipeline_run=run).first()
    step = run.steps.get(name="canary")
    if allowed:
        assert release is not None, run.error
        assert release.started_by == run.started_by_name and release.version == "9.9.9"
        assert step.status == "timed_out"  # it waited for the release, then aborted it
        return
    assert release is None and not Release.objects.filter(service=world.svc).exists()
    assert run.status == "failed" and step.status == "failed"
    why = {
        "token_noscope": "The token lacks the scope 'releases:promote' needed for starting a release",
        "token_revoked": "was revoked",
        "member_left": "Only members of the owning squad and org admins may do starting a release",
    }[persona]
    assert why in step.error and why in run.error, (step.error, run.error)
    assert why in pipelines_log(run)


def pipelines_log(run):
    from pipelines import services as pipeline_services

    return pipeline_services.read_log(run, 0, limit=100000)[0]
