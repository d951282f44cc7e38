"""One domain error, mapped once for the API and once for pages; services never import DRF."""

import ast
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from pipelines.models import PipelineRun
from portal.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from portal.models import ApiToken, EventSubscription
from tests.conftest import client_for
from tests.factories import ServiceFactory

ROOT = Path(__file__).resolve().parent.parent


APPS = sorted(p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name != "tests")


def _services_modules():
    """Every app's services.py, and the modules of infra's domain package it re-exports.

    Only the app packages are walked: var/ holds git checkouts that other tests create and
    delete while this runs.
    """
    found = [p for app in APPS if (ROOT / app).is_dir() for p in (ROOT / app).rglob("services.py")]
    return sorted({*found, *ROOT.glob("infra/domain/*.py")})


def test_no_services_module_imports_drf():
    found = _services_modules()
    assert len(found) >= 6, found  # portal, squads, pipelines, releases, infra, monitoring
    for path in found:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            bad = [n for n in names if n.split(".")[0] == "rest_framework" or n == "portal.api"]
            assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_error_fields_and_statuses():
    exc = Invalid(errors={"name": "Too long.", "url": ["Not a URL.", "Not https."]})
    assert exc.status == 400 and exc.code == "invalid"
    assert exc.errors == {"name": ["Too long."], "url": ["Not a URL.", "Not https."]}
    assert (
        exc.message == "name: Too long."
        and exc.text == "name: Too long.; url: Not a URL. Not https."
    )
    conflict = Conflict("Run #3 is already canceled.", state={"status": "canceled"})
    assert (conflict.status, conflict.code, conflict.state) == (
        409,
        "conflict",
        {"status": "canceled"},
    )
    assert (Forbidden().status, NotFound().status) == (403, 404)
    assert isinstance(Forbidden(), DomainError)
    from_django = Invalid.from_django(ValidationError({"slug": ["Taken."], "__all__": ["Bad."]}))
    assert from_django.errors == {"slug": ["Taken."], "non_field_errors": ["Bad."]}
    assert Invalid.from_django(ValidationError("step 2: bad"), field="steps").errors == {
        "steps": ["step 2: bad"]
    }


@pytest.fixture
def service(squad):
    return ServiceFactory(slug="svc", name="Svc", owner=squad)


def test_api_maps_each_error_once(service, alice, bob):
    url = "/api/v1/services/svc/pipeline-secrets/"
    bad = client_for(alice).post(url, {"name": "1BAD", "value": "x"}, format="json")
    assert bad.status_code == 400
    body = bad.json()
    assert body["code"] == "invalid" and "not a valid name" in body["errors"]["name"][0]
    assert body["message"].startswith("name: ")
    refused = client_for(bob).post(url, {"name": "OK", "value": "x"}, format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "permission_denied"
    assert "owning squad" in refused.json()["message"]
    run = PipelineRun.objects.create(service=service, number=1, status="succeeded", ref="main")
    again = client_for(alice).post(f"/api/v1/runs/{run.pk}/cancel")
    assert again.status_code == 409
    assert again.json()["state"] == {"id": run.pk, "status": "succeeded"}
    assert again.json()["current"] == again.json()["state"]


def test_pages_map_each_error_once(service, alice, bob):
    run = PipelineRun.objects.create(service=service, number=1, status="succeeded", ref="main")
    url = f"/pipelines/runs/{run.pk}/cancel"
    # a conflict: back to the run with the reason as a message
    resp = client_for(alice).post(url, follow=True)
    assert resp.redirect_chain[-1][0] == run.get_absolute_url()
    assert "Run #1 is already succeeded." in resp.content.decode()
    # HTMX: a 409 fragment with the reason, nothing to swap but the message
    frag = client_for(alice).post(url, HTTP_HX_REQUEST="true")
    assert frag.status_code == 409 and b"Run #1 is already succeeded." in frag.content
    # refused: the 403 page names the reason
    denied = client_for(bob).post(url)
    assert denied.status_code == 403 and b"owning squad" in denied.content


def test_an_unhandled_domain_error_in_a_page_is_mapped_too(squad, other_squad, bob):
    """token_revoke lets the service's refusal through: the middleware answers the 403 page."""
    token, _ = ApiToken.generate(squad=squad, name="ci", scopes=[])
    resp = client_for(bob).post(f"/tokens/{token.pk}/revoke")
    assert resp.status_code == 403 and b"revoke" in resp.content
    token.refresh_from_db()
    assert token.revoked_at is None


def test_subscription_validation_lives_in_the_service(squad, alice):
    """The page and the API refuse the same bad subscription with the service's field errors."""
    bad = {"squad": "playback", "name": "x", "url": "http://127.0.0.1:9/h", "secret": "s" * 12}
    api = client_for(alice).post(
        "/api/v1/event-subscriptions/", {**bad, "event_types": ["nope.*"]}, format="json"
    )
    assert api.status_code == 400, api.content
    reason = api.json()["errors"]["event_types"][0]
    assert "Unknown event type 'nope.*'" in reason
    page = client_for(alice).post("/events/", {**bad, "event_types": ["nope.*"]})
    assert page.status_code == 400 and reason in page.content.decode().replace("&#x27;", "'")
    page = client_for(alice).post(
        "/events/", {**bad, "url": "ftp://nope", "secret": "short", "event_types": ["release.*"]}
    )
    assert page.status_code == 400
    assert b"url: Enter an http:// or https:// URL." in page.content
    assert b"secret: The secret must be 8 to 200 characters long." in page.content
    assert not EventSubscription.objects.exists()
