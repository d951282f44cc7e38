"""The one inbound GitHub endpoint: ``POST /hooks/github`` (``/hooks/terraform`` is an alias).

Order of work, so that nobody unauthenticated gets anything parsed:

1. the body is read raw, at most 25 MB (413 beyond, from Content-Length and while reading);
2. the secrets to try are found without parsing: a linear scan of the raw bytes for repository
   URL strings (``"clone_url": "..."`` and the like; URL-decoded first for form bodies) names the
   candidate repositories, each receiver gives the secrets of its objects using them, plus
   ``GITHUB_WEBHOOK_SECRET``; ``X-Hub-Signature-256`` must be the HMAC-SHA256 of the raw body
   under one of them (constant-time compare) or the answer is 401 and nothing is parsed;
3. only then is the body parsed (JSON, or ``payload=`` of a form body) with a depth limit
   (400 ``too_complex`` beyond :data:`portal.safeparse.MAX_DEPTH`);
4. each registered :class:`Receiver` (pipelines, infra: filled from their ``AppConfig.ready()``)
   says which of its objects use the payload's repository and were signed with their secret;
   a delivery that matches objects but none of their secrets is 401;
5. ``ping`` → 200 "pong"; events other than ``push`` → 200 "ignored event X"; a push is
   described once (:class:`Push`: branch or tag, deleted, commit) and handed to every receiver
   with its verified objects; the answer merges what they did (``runs``: pipeline runs with
   ``service``, Terraform runs with ``workspace``; 202 when something new started).
"""

import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote_to_bytes

from django.conf import settings
from django.db.models.functions import Lower
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from portal import safeparse
from portal.actors import Actor
from portal.gitref import valid_branch
from portal.limits import body_limit

MAX_BYTES = 25 * 1024 * 1024
REPOSITORY_FIELDS = ("clone_url", "ssh_url", "html_url", "git_url", "url", "full_name")
MAX_HINTS = 200
MAX_HMAC_BYTES = 2**30  # bytes hashed to verify one delivery (about 40 secrets at 25 MB)
SHA_RE = re.compile(r"^[0-9a-fA-F]{40}([0-9a-fA-F]{24})?$")

_HINT = re.compile(
    rb'"(?:' + b"|".join(f.encode() for f in REPOSITORY_FIELDS) + rb')"\s*:\s*"'
    rb'((?:[^"\\\r\n]|\\[^\r\n]){1,500})"'
)


# --- signatures ---------------------------------------------------------------------------------
def signature_for(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body`` signed with ``secret``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def valid_signature(secret: str, body: bytes, header: str) -> bool:
    return bool(secret) and hmac.compare_digest(signature_for(secret, body), header)


# --- repositories -------------------------------------------------------------------------------
def url_keys(value) -> set[str]:
    """The forms one repository string may be stored as (with and without ``.git`` and ``/``)."""
    if not isinstance(value, str) or not value.strip():
        return set()
    value = value.strip().rstrip("/")
    other = value[:-4] if value.endswith(".git") else value + ".git"
    return {value, other, value + "/"}


def repository_keys(repo: dict) -> list[str]:
    """Every form of the payload repository's URLs and name a ``repository_url`` may hold."""
    keys: set[str] = set()
    for name in REPOSITORY_FIELDS:
        keys |= url_keys(repo.get(name))
    return sorted(keys)


def using_repository(queryset, keys, field_name="repository_url"):
    """``queryset`` narrowed to rows whose ``field_name`` is one of ``keys``, ignoring case."""
    lowered = sorted({k.lower() for k in keys})
    if not lowered:
        return queryset.none()
    return queryset.alias(_repo=Lower(field_name)).filter(_repo__in=lowered)


def repository_hints(body: bytes, content_type: str) -> list[str]:
    """Repository keys named in the raw body, found by a linear scan (nothing is parsed): they
    only choose which secrets to try; what a push reaches is decided after verification."""
    raw = body
    if content_type == "application/x-www-form-urlencoded":
        raw = unquote_to_bytes(body.replace(b"+", b" "))
    keys: set[str] = set()
    for count, match in enumerate(_HINT.finditer(raw)):
        if count >= MAX_HINTS:
            break
        try:
            keys |= url_keys(json.loads(b'"' + match.group(1) + b'"'))
        except ValueError:
            continue
    return sorted(keys)


# --- receivers ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Match:
    candidates: list  # the receiver's objects that use the payload's repository
    verified: list  # those of them whose secret signed the body
    labels: list[str]  # slugs of the verified objects, for the answer


@dataclass(frozen=True)
class Receiver:
    """What an app does with GitHub deliveries. ``secrets(keys)``: the secrets of its objects
    whose repository is one of ``keys``; ``match(repo, signed_with, default)``: a :class:`Match`;
    ``push(push, verified)``: a dict with ``runs`` and optionally ``reason``, ``skipped``,
    ``duplicate``."""

    name: str
    label: str  # key of the verified slugs in the ping answer ("services", "workspaces")
    secrets: Callable[[list[str]], set[str]]
    match: Callable[[dict, frozenset[str], str], Match]
    push: Callable[["Push", list], dict]
    # issue 18: ``pull_request(pr, verified)`` like ``push``; ``installation(event, data)`` for
    # ``installation*`` events (no repository: signed with GITHUB_WEBHOOK_SECRET)
    pull_request: Callable[["PullRequest", list], dict] | None = None
    installation: Callable[[str, dict], dict] | None = None


RECEIVERS: dict[str, Receiver] = {}


class Refused(ValueError):
    """A receiver refuses a verified payload (answered 400 with the message)."""


def register_receiver(receiver: Receiver) -> None:
    """Called from an app's ``AppConfig.ready()``; registering the same name again replaces it."""
    RECEIVERS[receiver.name] = receiver


@dataclass(frozen=True)
class Push:
    """A verified push, described once for every receiver."""

    data: dict
    ref: str
    kind: str  # "branch", "tag" or "other"
    name: str  # branch or tag name (the ref itself for "other")
    deleted: bool
    after: str  # the pushed commit, "" for a deletion
    delivery: str | None
    actor: Actor
    head: dict = field(default_factory=dict)

    @property
    def message(self) -> str:
        return str(self.head.get("message") or "")

    @property
    def author(self) -> str:
        return str((self.head.get("author") or {}).get("name") or "")


# --- the view -----------------------------------------------------------------------------------
def _error(status, code, message):
    return JsonResponse({"code": code, "message": message}, status=status)


def _read_body(request) -> bytes | None:
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_BYTES:
        return None
    body = request.read(MAX_BYTES + 1)
    return None if len(body) > MAX_BYTES else body


def _content_type(request) -> str:
    return (request.META.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()


def _signed_with(body: bytes, header: str, content_type: str) -> frozenset[str]:
    """The secrets (of those the body's repositories use) that signed the body; raises
    Refused when checking them all would hash more than MAX_HMAC_BYTES."""
    keys = repository_hints(body, content_type)
    secrets = {settings.GITHUB_WEBHOOK_SECRET} - {""}
    for receiver in RECEIVERS.values():
        secrets |= receiver.secrets(keys)
    if len(secrets) * len(body) > MAX_HMAC_BYTES:
        raise Refused(
            f"The body names repositories with {len(secrets)} different secrets; at "
            f"{len(body)} bytes that is more than can be checked."
        )
    return frozenset(s for s in secrets if valid_signature(s, body, header))


def parse_payload(body: bytes, content_type: str) -> dict:
    """The JSON object of a (verified) body; raises TooComplex or ValueError."""
    raw: str | bytes = body
    if content_type == "application/x-www-form-urlencoded":
        form = parse_qs(body.decode("utf-8"), max_num_fields=100, strict_parsing=False)
        if "payload" not in form:
            raise ValueError("a form-encoded body must have a payload= field")
        raw = form["payload"][0]
    data = safeparse.loads_json(raw)
    if not isinstance(data, dict):
        raise ValueError("the payload is not a JSON object")
    return data


@body_limit(MAX_BYTES)  # GitHub sends push payloads up to 25 MB
@csrf_exempt
@require_POST
def github(request):
    body = _read_body(request)
    if body is None:
        return _error(413, "too_large", f"The body is larger than {MAX_BYTES // 2**20} MB.")
    header = request.headers.get("X-Hub-Signature-256", "")
    if not header:
        return _error(401, "unsigned", "The X-Hub-Signature-256 header is missing.")
    ctype = _content_type(request)
    try:
        signed_with = _signed_with(body, header, ctype)
    except Refused as exc:
        return _error(400, "too_many_secrets", str(exc))
    if not signed_with:
        return _bad_signature()
    try:
        data = parse_payload(body, ctype)
    except safeparse.TooComplex as exc:
        return _error(400, exc.code, f"The payload is refused: {exc}.")
    except ValueError as exc:
        return _error(400, "invalid", f"The body is not a JSON payload: {exc}")
    repo = _field(data, "repository", dict)
    default = settings.GITHUB_WEBHOOK_SECRET
    matches = {n: r.match(repo, signed_with, default) for n, r in RECEIVERS.items()}
    if not any(m.verified for m in matches.values()) and (
        any(m.candidates for m in matches.values()) or default not in signed_with
    ):
        return _bad_signature()
    event = request.headers.get("X-GitHub-Event", "") or "(none)"
    if event == "ping":
        labels = {RECEIVERS[n].label: m.labels for n, m in matches.items()}
        return JsonResponse({"ok": True, "event": "ping", "message": "pong", **labels})
    if event == "pull_request":
        return pull_request_delivery(request, data, matches)
    if event.startswith("installation"):
        return installation_delivery(event, data)
    if event != "push":
        return JsonResponse(
            {
                "ok": True,
                "ignored": f"event {event} is not handled",
                "message": f"ignored event {event}",
            }
        )
    return _push(request, data, matches)


def _bad_signature():
    return _error(
        401,
        "bad_signature",
        "X-Hub-Signature-256 does not match the body signed with this repository's secret.",
    )


def _field(data: dict, key: str, kind: type):
    """``data[key]`` when it is a ``kind``, else an empty ``kind``."""
    value = data.get(key)
    return value if isinstance(value, kind) else kind()


def describe_push(request, data: dict) -> Push:
    """A :class:`Push` from a verified payload; raises ValueError naming the bad field."""
    ref = data.get("ref")
    if not isinstance(ref, str) or not ref:
        raise ValueError("ref: expected a string like refs/heads/main")
    kind, name = "other", ref
    for prefix, what in (("refs/heads/", "branch"), ("refs/tags/", "tag")):
        if ref.startswith(prefix):
            kind, name = what, ref.removeprefix(prefix)
    if kind != "other" and not valid_branch(name):
        raise ValueError(f"ref: {ref[:300]!r} is not a {kind} name git accepts")
    after: str = _field(data, "after", str)
    if after and not SHA_RE.match(after):
        raise ValueError(f"after: {after[:100]!r} is not a commit id")
    deleted = bool(data.get("deleted"))
    who = _field(data, "sender", dict).get("login") or _field(data, "pusher", dict).get("name")
    return Push(
        data=data,
        ref=ref,
        kind=kind,
        name=name,
        deleted=deleted,
        after="" if deleted or set(after) == {"0"} else after,
        delivery=request.headers.get("X-GitHub-Delivery", "")[:100] or None,
        actor=Actor(
            door="webhook",
            ip=request.META.get("REMOTE_ADDR"),
            system_name=f"github:{who or 'push'}",
        ),
        head=_field(data, "head_commit", dict),
    )


def _push(request, data, matches):
    try:
        push = describe_push(request, data)
    except ValueError as exc:
        return _error(400, "invalid", str(exc))
    if not any(m.verified for m in matches.values()):
        reason = "no matching service or workspace uses this repository"
        return JsonResponse({"ok": True, "runs": [], "run_id": None, "reason": reason})
    if push.deleted:
        what = {"branch": "branch", "tag": "tag"}.get(push.kind, "ref")
        reason = f"{what} {push.name} deleted; nothing to run"
        return JsonResponse({"ok": True, "runs": [], "run_id": None, "reason": reason})
    answer: dict = {"ok": True, "runs": []}
    for name, match in matches.items():
        if not match.verified:
            continue
        try:
            result = RECEIVERS[name].push(push, match.verified)
        except Refused as exc:
            return _error(400, "invalid", str(exc))
        answer["runs"] += result.get("runs", [])
        for key in ("reason", "skipped", "discovery"):
            if result.get(key) and key not in answer:
                answer[key] = result[key]
        answer["duplicate"] = answer.get("duplicate", False) or bool(result.get("duplicate"))
    answer["run_id"] = next((r["id"] for r in answer["runs"] if "service" in r), None)
    if not answer.pop("duplicate"):
        return JsonResponse(answer, status=202 if answer["runs"] else 200)
    answer["duplicate"] = True
    return JsonResponse(answer, status=200)


# --- pull requests and installations (issue 18) ---------------------------------------------------
PR_ACTIONS = ("opened", "synchronize", "reopened")


@dataclass(frozen=True)
class PullRequest:
    """A verified ``pull_request`` event (opened, synchronize, reopened), described once."""

    data: dict
    action: str
    number: int
    head_sha: str
    head_ref: str
    base_ref: str
    title: str
    author: str
    repository: str  # owner/name
    installation: int
    delivery: str | None
    actor: Actor
    from_fork: bool = False  # the head commit lives in another repository


def describe_pull_request(request, data: dict) -> PullRequest:
    """A :class:`PullRequest` from a verified payload; raises ValueError naming the bad field."""
    pr = _field(data, "pull_request", dict)
    head, base = _field(pr, "head", dict), _field(pr, "base", dict)
    number = data.get("number", pr.get("number"))
    if not isinstance(number, int) or number < 1:
        raise ValueError("number: expected the pull request's number")
    sha = head.get("sha")
    if not isinstance(sha, str) or not SHA_RE.match(sha):
        raise ValueError("pull_request.head.sha: expected a commit id")
    for where, value in (("head", head.get("ref")), ("base", base.get("ref"))):
        if not isinstance(value, str) or not valid_branch(value):
            raise ValueError(f"pull_request.{where}.ref: expected a branch name")
    who = _field(data, "sender", dict).get("login") or "pull_request"
    installation = _field(data, "installation", dict).get("id")
    head_repo = _field(head, "repo", dict).get("full_name")
    base_repo = _field(base, "repo", dict).get("full_name")
    return PullRequest(
        data=data,
        action=str(data.get("action")),
        number=number,
        head_sha=sha,
        head_ref=head["ref"],
        base_ref=base["ref"],
        title=str(pr.get("title") or "")[:500],
        author=str(_field(pr, "user", dict).get("login") or ""),
        repository=str(_field(data, "repository", dict).get("full_name") or ""),
        installation=installation if isinstance(installation, int) else 0,
        delivery=request.headers.get("X-GitHub-Delivery", "")[:100] or None,
        actor=Actor(
            door="webhook", ip=request.META.get("REMOTE_ADDR"), system_name=f"github:{who}"
        ),
        from_fork=bool(head_repo and base_repo and head_repo != base_repo),
    )


def pull_request_delivery(request, data: dict, matches: dict):
    action = data.get("action")
    if action not in PR_ACTIONS:
        message = f"pull_request action {str(action)[:50]!r} starts nothing (runs: {', '.join(PR_ACTIONS)})"
        return JsonResponse({"ok": True, "runs": [], "run_id": None, "reason": message})
    try:
        pr = describe_pull_request(request, data)
    except ValueError as exc:
        return _error(400, "invalid", str(exc))
    answer: dict = {"ok": True, "runs": [], "pull_request": pr.number}
    for name, match in matches.items():
        handler = RECEIVERS[name].pull_request
        if not match.verified or handler is None:
            continue
        try:
            result = handler(pr, match.verified)
        except Refused as exc:
            return _error(400, "invalid", str(exc))
        answer["runs"] += result.get("runs", [])
        for key in ("reason", "skipped", "canceled"):
            if result.get(key):
                answer.setdefault(key, result[key])
    if not answer["runs"] and "reason" not in answer:
        answer["reason"] = "no matching service uses this repository"
    answer["run_id"] = next((r["id"] for r in answer["runs"]), None)
    return JsonResponse(answer, status=202 if answer["runs"] else 200)


def installation_delivery(event: str, data: dict):
    """``installation`` / ``installation_repositories`` (and the rest of the family): handed to
    the receivers that listen (discovery scans the installation again)."""
    installation = _field(data, "installation", dict).get("id")
    answer: dict = {"ok": True, "event": event, "action": str(data.get("action") or "")}
    answer["installation"] = installation if isinstance(installation, int) else None
    for receiver in RECEIVERS.values():
        if receiver.installation is not None:
            answer.update(receiver.installation(event, data))
    return JsonResponse(answer)
