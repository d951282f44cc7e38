"""POST /hooks/github with GitHub's own example payloads and real HMAC-SHA256 signatures."""

import json
from urllib.parse import urlencode

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


def test_push_starts_a_run_fast_with_its_id(
    hello, push, monkeypatch, django_capture_on_commit_callbacks
):
    """Fast because nothing runs inline: the answer carries a queued run whose execution is a
    Celery task sent after commit (no worker runs here, and nothing was started)."""
    from portal.celery import app

    sent = []
    monkeypatch.setattr(app, "send_task", lambda name, args, **kw: sent.append((name, args)))
    with django_capture_on_commit_callbacks(execute=True):
        resp = post(push, delivery="abc-1")
    assert resp.status_code == 202, resp.content
    data = resp.json()
    run = PipelineRun.objects.get(pk=data["run_id"])
    assert data["runs"][0]["service"] == "hello-world"
    assert run.service == hello and run.ref == "master" and run.status == "queued"
    assert run.requested_commit == push["after"]
    assert run.trigger == "push" and run.delivery_id == "abc-1"
    assert run.commit_message == push["head_commit"]["message"]
    assert run.started_at is None and run.commit_sha == "" and not run.steps.exists()
    assert sent == [("pipelines.tasks.execute_run", (run.pk,))]
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


# --- verification before parsing, bounded nesting -------------------------------------------------
def nested(depth=1000):
    """A ~2 KB JSON object nested ``depth`` levels deep."""
    return b'{"a":' * depth + b"1" + b"}" * depth


def test_a_deeply_nested_body_never_answers_500(hello, settings):
    body = nested()
    assert len(body) < 8 * 1024
    assert post(body, secret=None).status_code == 401  # unsigned
    assert post(body, secret="guess").status_code == 401  # signed with a wrong secret
    settings.GITHUB_WEBHOOK_SECRET = "installation-wide"
    resp = post(body, secret="installation-wide")  # signed: parsed, and refused as too deep
    assert resp.status_code == 400, resp.content
    assert resp.json()["code"] == "too_complex"
    assert "nested deeper than 64 levels" in resp.json()["message"]
    form = urlencode({"payload": body.decode()}).encode()
    resp = post(form, secret="installation-wide", content_type="application/x-www-form-urlencoded")
    assert resp.status_code == 400 and resp.json()["code"] == "too_complex"


def test_a_body_that_fails_verification_is_never_parsed(hello, push, monkeypatch):
    from portal import inbound

    parsed = []
    real = inbound.parse_payload
    monkeypatch.setattr(inbound, "parse_payload", lambda *a: parsed.append(a) or real(*a))
    assert post(push, secret="not the secret").status_code == 401
    assert post(push, signature="sha256=" + "0" * 64).status_code == 401
    assert parsed == []
    assert post(push).status_code == 202
    assert len(parsed) == 1


# --- git's ref rules ----------------------------------------------------------------------------
@pytest.mark.parametrize("branch", ["feature/ümlaut", "fix#12", "a,b=c", "x+y@z", "wip!", "日本"])
def test_pushes_to_branch_names_git_accepts_start_runs(hello, push, branch):
    push["ref"] = f"refs/heads/{branch}"
    resp = post(push)
    assert resp.status_code == 202, resp.content
    assert PipelineRun.objects.get(pk=resp.json()["run_id"]).ref == branch


@pytest.mark.parametrize(
    "branch", ["-x", "--upload-pack=evil", "a..b", "a b", "a~1", "x.lock", "HEAD"]
)
def test_pushes_to_names_git_refuses_are_400(hello, push, branch):
    push["ref"] = f"refs/heads/{branch}"
    resp = post(push)
    assert resp.status_code == 400, resp.content
    assert (
        resp.json()["message"].startswith("ref: ")
        and "not a branch name git accepts" in (resp.json()["message"])
    )
    assert not PipelineRun.objects.exists()


# --- tags ---------------------------------------------------------------------------------------
def test_a_tag_deletion_is_a_tag_deletion(hello, shared_data):
    body = load(shared_data, "push-payload.json")  # GitHub's example: refs/tags/simple-tag deleted
    assert body["ref"] == "refs/tags/simple-tag" and body["deleted"] is True
    resp = post(body)
    assert resp.status_code == 200
    assert resp.json()["reason"] == "tag simple-tag deleted; nothing to run"
    assert not PipelineRun.objects.exists()


def test_a_tag_push_starts_no_pipeline_run(hello, push):
    # a spec's filters (`branches:`) only name branches: a tag matches none of them
    push["ref"] = "refs/tags/v1.2.0"
    resp = post(push)
    assert resp.status_code == 200
    assert resp.json()["reason"] == "tag v1.2.0 is not a branch; pipelines run on branch pushes"
    assert not PipelineRun.objects.exists()


# --- form-encoded bodies ------------------------------------------------------------------------
def test_form_encoded_payloads_are_verified_over_the_raw_body(hello, push, shared_data):
    raw = urlencode({"payload": json.dumps(push)}).encode()
    form = "application/x-www-form-urlencoded"
    sig = signature_for(SECRET, raw)
    # the signature of the JSON inside does not do: GitHub signs the form body as sent
    inner = signature_for(SECRET, json.dumps(push).encode())
    assert post(raw, signature=inner, content_type=form).status_code == 401
    assert post(raw, signature=sig, content_type=form).status_code == 202
    ping_body = load(shared_data, "ping-payload.json")
    ping_body["repository"]["clone_url"] = "https://github.com/Codertocat/Hello-World.git"
    ping = urlencode({"payload": json.dumps(ping_body)}).encode()
    resp = post(ping, event="ping", content_type=form)
    assert resp.status_code == 200 and resp.json()["message"] == "pong"
    no_payload = urlencode({"other": "x"}).encode()
    assert post(no_payload, content_type=form).status_code == 401  # names no repository


# --- which secrets are tried --------------------------------------------------------------------
def test_a_secret_only_reaches_its_own_repository(hello, push, db, squad):
    """The raw body's repository strings only choose the secrets to try: a body that mentions
    hello-world's URL somewhere but is a push to another repository, signed with hello-world's
    secret, reaches neither service."""
    ServiceFactory(
        slug="other",
        owner=squad,
        repository_url="https://github.com/acme/other",
        webhook_secret="o",
    )
    push["repository"] = {"clone_url": "https://github.com/acme/other.git"}
    push["sender"]["html_url"] = "https://github.com/Codertocat/Hello-World"  # planted
    resp = post(push)  # signed with hello-world's secret
    assert resp.status_code == 401
    assert not PipelineRun.objects.exists()
    assert post(push, secret="o").status_code == 202


def test_escaped_repository_urls_are_found(hello, push):
    raw = json.dumps(push).replace("/", "\\/").encode()  # some encoders escape '/'
    assert b"https:\\/\\/github.com" in raw
    resp = post(raw)
    assert resp.status_code == 202, resp.content


def test_the_work_of_verifying_one_body_is_bounded(hello, push, db, squad, monkeypatch):
    from portal import inbound

    for i in range(3):
        ServiceFactory(
            slug=f"r{i}", owner=squad, repository_url=f"acme/r{i}", webhook_secret=f"s{i}"
        )
    push["sender"]["url"] = "acme/r0"  # names more repositories, each with its own secret
    push["sender"]["html_url"], push["pusher"]["url"] = "acme/r1", "acme/r2"
    raw = json.dumps(push).encode()
    assert post(raw).status_code == 202
    monkeypatch.setattr(inbound, "MAX_HMAC_BYTES", 3 * len(raw))  # 4 secrets to try: too many
    resp = post(raw, delivery="d-2")
    assert resp.status_code == 400 and resp.json()["code"] == "too_many_secrets"
    assert "4 different secrets" in resp.json()["message"]
