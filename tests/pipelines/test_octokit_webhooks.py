"""Reference suite: every example payload of octokit/webhooks (``tests/data/octokit-webhooks``,
273 payloads of 60 events), signed, posted as JSON and form-encoded with its ``X-GitHub-Event``,
once with a service that uses the payload's repository and once with none. The answer each must
give is derived from the payload itself."""

import json
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.test import Client

from pipelines.models import PipelineRun
from portal.inbound import signature_for
from tests.factories import ServiceFactory

DATA = Path(__file__).resolve().parents[1] / "data" / "octokit-webhooks"
PAYLOADS = sorted(p.relative_to(DATA).as_posix() for p in DATA.glob("*/*.json"))
SECRET = "octokit-service-secret"
DEFAULT = "installation-wide-secret"
FORM = "application/x-www-form-urlencoded"


def repository_of(data) -> str | None:
    repo = data.get("repository")
    if isinstance(repo, dict):
        return repo.get("html_url") or repo.get("full_name")
    return None


def expected(event: str, data: dict, service: str | None) -> tuple[int, dict]:
    """(status, fields the answer must have), from the payload alone."""
    if event == "ping":
        return 200, {"message": "pong", "services": [service] if service else []}
    if event == "pull_request":
        return expected_pull_request(data, service)
    if event.startswith("installation"):
        return 200, {"event": event, "action": data.get("action", "")}
    if event != "push":
        return 200, {"message": f"ignored event {event}"}
    ref = data["ref"]
    kind, _, name = ref.removeprefix("refs/").partition("/")
    if service is None:
        return 200, {"runs": [], "reason": "no matching service or workspace uses this repository"}
    if data["deleted"]:
        return 200, {"runs": [], "reason": f"{kind.rstrip('s')} {name} deleted; nothing to run"}
    if kind == "tags":
        return 200, {
            "runs": [],
            "reason": f"tag {name} is not a branch; pipelines run on branch pushes",
        }
    return 202, {"ref": name, "commit": data["after"], "service": service}


def expected_pull_request(data: dict, service: str | None) -> tuple[int, dict]:
    """Issue 18: opened / synchronize / reopened run the pipeline on the head commit."""
    action = data["action"]
    if action not in ("opened", "synchronize", "reopened"):
        reason = (
            f"pull_request action {action!r} starts nothing (runs: opened, synchronize, reopened)"
        )
        return 200, {"runs": [], "reason": reason}
    if service is None:
        return 200, {"runs": [], "reason": "no matching service uses this repository"}
    head = data["pull_request"]["head"]
    return 202, {"ref": head["ref"], "commit": head["sha"], "trigger": "pull_request"}


def send(raw_json: bytes, event: str, *, form: bool, secret: str, delivery: str):
    raw = urlencode({"payload": raw_json.decode()}).encode() if form else raw_json
    return Client().post(
        "/hooks/github",
        raw,
        content_type=FORM if form else "application/json",
        HTTP_X_GITHUB_EVENT=event,
        HTTP_X_GITHUB_DELIVERY=delivery,
        HTTP_X_HUB_SIGNATURE_256=signature_for(secret, raw),
    )


def test_the_whole_reference_set_is_here():
    events = {p.split("/")[0] for p in PAYLOADS}
    assert len(PAYLOADS) == 273 and len(events) == 60
    assert {"push", "ping", "pull_request", "issues"} <= events


def check(raw, event, data, service, *, form):
    secret = SECRET if service else DEFAULT
    delivery = f"{event}-{form}-{service}"
    wrong = send(raw, event, form=form, secret="not-the-secret", delivery=delivery)
    assert wrong.status_code == 401, wrong.content
    if service:  # the installation-wide secret does not stand in for the service's own
        assert send(raw, event, form=form, secret=DEFAULT, delivery=delivery).status_code == 401
    resp = send(raw, event, form=form, secret=secret, delivery=delivery)
    status, want = expected(event, data, service)
    assert resp.status_code == status, resp.content[:500]
    body = resp.json()
    if status == 202:
        run = PipelineRun.objects.get(pk=body["run_id"])
        assert [r["service"] for r in body["runs"]] == [service]
        assert (run.ref, run.requested_commit) == (want["ref"], want["commit"])
        assert run.trigger == want.get("trigger", "push") and run.delivery_id == delivery
    else:
        assert {k: body.get(k) for k in want} == want
        assert not PipelineRun.objects.filter(delivery_id=delivery).exists()


@pytest.mark.parametrize("name", PAYLOADS)
def test_octokit_payload(db, squad, settings, name):
    """JSON and form-encoded, first with no service using the repository (only the
    installation-wide secret verifies it), then with one (only its own secret does)."""
    settings.GITHUB_WEBHOOK_SECRET = DEFAULT
    event = name.split("/")[0]
    raw = (DATA / name).read_bytes()
    data = json.loads(raw)
    for form in (False, True):
        check(raw, event, data, None, form=form)
    repo_url = repository_of(data)
    if repo_url:
        ServiceFactory(slug="octo", owner=squad, repository_url=repo_url, webhook_secret=SECRET)
        for form in (False, True):
            check(raw, event, data, "octo", form=form)
