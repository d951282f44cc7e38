"""POST /hooks/github with GitHub's own example payloads and real HMAC-SHA256 signatures."""

import json
import time

import pytest
from django.test import Client

from pipelines.models import PipelineConfig, PipelineRun
from portal.inbound import signature_for
from portal.models import AuditEvent
from tests.factories import ServiceFactory

SECRET = "It's a Secret to Everybody"
URL = "/hooks/github"


def load(shared_data, name):
    return json.loads((shared_data / "github-webhooks" / name).read_text())


def post(
    body,
    *,
    event="push",
    secret=SECRET,
    delivery="d-1",
    signature=None,
    content_type="application/json",
):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"HTTP_X_GITHUB_EVENT": event, "HTTP_X_GITHUB_DELIVERY": delivery}
    if signature is None and secret is not None:
        signature = signature_for(secret, raw)
    if signature is not None:
        headers["HTTP_X_HUB_SIGNATURE_256"] = signature
    return Client().post(URL, data=raw, content_type=content_type, **headers)


@pytest.fixture
def hello(db, squad):
    """The service whose repository is the one in GitHub's example payloads."""
    return ServiceFactory(
        slug="hello-world",
        owner=squad,
        repository_url="https://github.com/Codertocat/Hello-World",
        webhook_secret=SECRET,
        default_branch="master",
    )


@pytest.fixture
def push(shared_data):
    return load(shared_data, "push-with-new-branch.payload.json")


def test_ping_answers_200(hello, shared_data):
    body = load(shared_data, "ping-payload.json")
    body["repository"]["clone_url"] = "https://github.com/Codertocat/Hello-World.git"
    resp = post(body, event="ping")
    assert resp.status_code == 200
    assert resp.json()["services"] == ["hello-world"]


def test_ping_of_an_unknown_repository_with_the_default_secret(db, shared_data, settings):
    settings.GITHUB_WEBHOOK_SECRET = "installation-wide"
    body = load(shared_data, "ping-with-organization.payload.json")
    assert post(body, event="ping", secret="installation-wide").status_code == 200
    assert post(body, event="ping", secret="wrong").status_code == 401


def test_push_starts_a_run_fast_with_its_id(hello, push):
    t0 = time.monotonic()
    resp = post(push, delivery="abc-1")
    elapsed = time.monotonic() - t0
    assert resp.status_code == 202, resp.content
    data = resp.json()
    run = PipelineRun.objects.get(pk=data["run_id"])
    assert data["runs"][0]["service"] == "hello-world"
    assert run.service == hello and run.ref == "master" and run.status == "queued"
    assert run.requested_commit == push["after"]
    assert run.trigger == "push" and run.delivery_id == "abc-1"
    assert run.commit_message == push["head_commit"]["message"]
    assert elapsed < 2
    event = AuditEvent.objects.get(action="pipeline.trigger")
    assert event.door == "webhook" and event.actor == "github:Codertocat"


@pytest.mark.parametrize("field", ["clone_url", "ssh_url", "html_url", "full_name"])
def test_matched_by_any_repository_form(db, squad, push, field):
    svc = ServiceFactory(
        slug=f"svc-{field.replace('_', '-')}",
        owner=squad,
        repository_url=push["repository"][field],
        webhook_secret=SECRET,
    )
    resp = post(push)
    assert resp.status_code == 202
    assert [r["service"] for r in resp.json()["runs"]] == [svc.slug]


def test_wrong_or_missing_signature_is_401(hello, push):
    resp = post(push, signature="sha256=" + "0" * 64)
    assert resp.status_code == 401 and resp.json()["code"] == "bad_signature"
    resp = post(push, secret="not the secret")
    assert resp.status_code == 401
    resp = post(push, secret=None)
    assert resp.status_code == 401 and "missing" in resp.json()["message"]
    # a body altered after signing
    raw = json.dumps(push).encode()
    sig = signature_for(SECRET, raw)
    assert post(raw.replace(b"master", b"main!"), signature=sig).status_code == 401
    assert not PipelineRun.objects.exists()


def test_redelivery_starts_no_second_run(hello, push):
    first = post(push, delivery="same-delivery")
    again = post(push, delivery="same-delivery")
    assert first.status_code == 202
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["run_id"] == first.json()["run_id"]
    assert PipelineRun.objects.count() == 1
    assert post(push, delivery="another").status_code == 202
    assert PipelineRun.objects.count() == 2


def test_branch_deletion_starts_nothing(hello, push):
    push["deleted"] = True
    push["after"] = "0" * 40
    resp = post(push)
    assert resp.status_code == 200 and "deleted" in resp.json()["reason"]
    assert not PipelineRun.objects.exists()


def test_tag_push_from_example_payload_starts_nothing(hello, shared_data):
    resp = post(load(shared_data, "push-payload.json"))
    assert resp.status_code == 200 and resp.json()["runs"] == []
    assert not PipelineRun.objects.exists()


def test_branch_filters_are_honoured(hello, push):
    PipelineConfig.objects.create(
        service=hello, known_branches={"include": ["main", "release/*"], "exclude": []}
    )
    resp = post(push)
    assert resp.status_code == 200
    assert resp.json()["skipped"]["services"] == ["hello-world"]
    assert not PipelineRun.objects.exists()
    push["ref"] = "refs/heads/release/1.2"
    assert post(push, delivery="d-2").status_code == 202


def test_oversized_body_is_413(hello):
    big = b'{"x": "' + b"a" * (25 * 1024 * 1024) + b'"}'
    resp = post(big)
    assert resp.status_code == 413 and "25 MB" in resp.json()["message"]


def test_bad_json_is_400_and_get_is_405(hello, settings):
    # a body that names no repository can only be verified with the installation-wide secret
    assert post(b"not json").status_code == 401
    settings.GITHUB_WEBHOOK_SECRET = "installation-wide"
    assert post(b"not json", secret="installation-wide").status_code == 400
    assert Client().get(URL).status_code == 405


def test_form_encoded_payload(hello, push):
    from urllib.parse import urlencode

    raw = urlencode({"payload": json.dumps(push)}).encode()
    resp = post(raw, content_type="application/x-www-form-urlencoded")
    assert resp.status_code == 202


def test_default_secret_applies_when_the_service_has_none(db, squad, push, settings):
    settings.GITHUB_WEBHOOK_SECRET = "org-default"
    ServiceFactory(
        slug="hw", owner=squad, repository_url="Codertocat/Hello-World", webhook_secret=""
    )
    assert post(push, secret=SECRET).status_code == 401
    assert post(push, secret="org-default").status_code == 202
