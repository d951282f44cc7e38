"""Issue 14: size limits on request bodies and on every text field people and bots write.

The finding: a 25 MB pipeline spec was accepted, held a web thread for 52 s and was then served
26 MB at a time. Now a body over DATA_UPLOAD_MAX_MEMORY_SIZE is a 413 before anything reads it,
and a field over its limit a 400 naming the field, with nothing stored."""

import pytest
from django.conf import settings
from django.test import Client

from infra import services as infra
from infra.models import Workspace
from monitoring.models import AlertRule
from pipelines.models import PipelineConfig
from portal import limits
from portal.actors import Actor
from portal.errors import Invalid
from squads.models import Api, Service
from tests.conftest import client_for, token_client
from tests.factories import ServiceFactory

pytestmark = pytest.mark.django_db

BIG = 25 * 2**20


@pytest.fixture
def service(squad):
    return ServiceFactory(slug="player", owner=squad, repository_url="")


def _spec(n):
    return "stages: [{name: b, steps: [{name: s, run: 'true'}]}]\n" + "#" * n + "\n"


def test_a_25_mb_spec_is_413_at_once(alice, service, monkeypatch):
    """Refused from the declared length: not a byte of the body is read, nothing is parsed."""
    from django.core.handlers.wsgi import LimitedStream

    read = []
    for name in ("read", "readline"):
        real = getattr(LimitedStream, name)
        monkeypatch.setattr(
            LimitedStream,
            name,
            lambda self, *a, _real=real: read.append(len(data := _real(self, *a))) or data,
        )
    c = client_for(alice)
    r = c.put("/api/v1/services/player/pipeline-spec", {"spec": _spec(BIG)}, format="json")
    assert r.status_code == 413, r.content[:300]
    assert r.json()["code"] == "too_large"
    assert f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,}" in r.json()["message"]
    assert sum(read) == 0, f"{sum(read):,} bytes of the body were read"
    assert not PipelineConfig.objects.exists()


def test_a_spec_over_its_field_limit_is_400_naming_it(alice, service):
    c = client_for(alice)
    text = _spec(limits.SPEC_MAX)
    r = c.put("/api/v1/services/player/pipeline-spec", {"spec": text}, format="json")
    assert r.status_code == 400, r.content[:300]
    assert "spec" in r.json()["errors"] and f"{limits.SPEC_MAX:,}" in r.json()["errors"]["spec"][0]
    assert not PipelineConfig.objects.exists()
    ok = _spec(1000)
    assert (
        c.put("/api/v1/services/player/pipeline-spec", {"spec": ok}, format="json").status_code
        == 200
    )
    # the page's form: the message, nothing stored
    page = Client()
    page.force_login(alice)
    r = page.post("/pipelines/services/player/spec", {"spec": text}, follow=True)
    assert r.status_code == 200 and "spec" in r.content.decode() and "at most" in r.content.decode()
    assert PipelineConfig.objects.get().spec_yaml == ok


def test_html_form_bodies_over_the_limit_are_413(alice, service):
    page = Client()
    page.force_login(alice)
    r = page.post("/pipelines/services/player/spec", {"spec": _spec(5 * 2**20)})
    assert r.status_code == 413 and b"at most" in r.content


def test_text_fields_over_their_limit_are_400_through_api_and_domain(alice, squad, service):
    c = client_for(alice)
    r = c.patch("/api/v1/services/player/", {"description": "x" * 20_001}, format="json")
    assert r.status_code == 400 and "description" in r.json()["errors"], r.content[:300]
    assert Service.objects.get(slug="player").description != "x" * 20_001
    assert (
        c.patch("/api/v1/services/player/", {"description": "ok"}, format="json").status_code == 200
    )
    # a CharField over its max_length through a door without a serializer: 400, not a DataError
    with pytest.raises(Invalid) as exc:
        infra.create_workspace(
            squad, actor=Actor(user=alice), slug="edge", name="n" * 201, files={"main.tf": ""}
        )
    assert "name" in exc.value.errors and not Workspace.objects.exists()


def test_variable_and_alert_query_limits(alice, squad, service, make_token):
    Workspace.objects.create(slug="edge", name="Edge", owner=squad, files={"main.tf": ""})
    c = client_for(alice)
    r = c.post(
        "/api/v1/workspaces/edge/variables",
        {"key": "blob", "value": "v" * (limits.SPEC_MAX + 1)},
        format="json",
    )
    assert r.status_code == 400 and "value" in r.json()["errors"], r.content[:300]
    bot = token_client(make_token(squad, ["alerts:write"]))

    def rule(query):
        body = {"service": "player", "name": "q", "query": query, "comparison": ">", "threshold": 1}
        return bot.post("/api/v1/alert-rules/", body, format="json")

    r = rule("up" + " + up" * 3000)
    assert r.status_code == 400 and "query" in r.json()["errors"], r.content[:300]
    # under the field limit, a long chain of operators is refused by the parser (it recursed
    # past Python's limit while evaluating: a 500)
    r = rule("up" + "+up" * 2000)
    assert r.status_code == 400 and "operators" in str(r.json()["errors"]["query"]), r.content[:300]
    assert not AlertRule.objects.exists()


def test_views_with_their_own_larger_limit_still_get_their_bodies(alice, admin_user):
    """The Backstage import takes 10 MB and the GitHub webhook 25 MB: bodies between 4 MB and
    their limit reach them (and they answer for themselves)."""
    body = "# " + "x" * (5 * 2**20) + "\n"
    c = client_for(admin_user)
    r = c.generic("POST", "/api/v1/catalog/import", body, content_type="application/yaml")
    assert r.status_code in (200, 400) and r.json().get("code") != "too_large", r.content[:300]
    r = Client().post("/hooks/github", "{}" + " " * (5 * 2**20), content_type="application/json")
    assert r.status_code == 401  # read, then refused for its missing signature


def test_import_refuses_a_too_long_description_naming_the_entity(admin_user):
    doc = (
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: long-one\n"
        f"  description: {'d' * 20_001}\nspec:\n  type: service\n  lifecycle: production\n"
        "  owner: group:default/nobody\n"
    )
    r = client_for(admin_user).generic(
        "POST", "/api/v1/catalog/import", doc, content_type="application/yaml"
    )
    assert r.status_code == 400, r.content[:300]
    issues = r.json()["errors"]
    assert any(
        i["field"] == "metadata.description" and "long-one" in i["entity"] for i in issues
    ), issues
    assert not Service.objects.filter(slug="long-one").exists()
    assert not Api.objects.exists()


def test_every_limited_field_exists():
    from django.apps import apps

    for label, fields in limits.FIELD_LIMITS.items():
        model = apps.get_model(label)
        for name in fields:
            model._meta.get_field(name)
