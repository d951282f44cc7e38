"""``POST /hooks/github``: GitHub push webhooks start pipeline runs.

- body over 25 MB → 413 (checked from Content-Length before reading, and while reading);
- ``X-Hub-Signature-256`` must be the HMAC-SHA256 of the raw body with the secret of a service
  whose repository matches the payload (or ``GITHUB_WEBHOOK_SECRET``); constant-time compare;
  401 otherwise;
- ``ping`` → 200; ``push`` → 202 with the run ids; a redelivered ``X-GitHub-Delivery`` returns
  the runs it started the first time; ``deleted: true`` and tags start nothing (200); branch
  filters of the last known spec are honoured (the worker checks again at the commit).
"""

import hashlib
import hmac
import json
from urllib.parse import parse_qs

from django.conf import settings
from django.db.models import Q
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from pipelines import services
from pipelines.models import PipelineConfig, PipelineRun
from pipelines.spec import branch_matches
from portal.actors import Actor
from portal.errors import Invalid
from squads.models import Service

WEBHOOK_MAX_BYTES = 25 * 1024 * 1024  # the largest push payload GitHub sends


def _error(status, code, message):
    return JsonResponse({"code": code, "message": message}, status=status)


def signature_for(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _valid(secret: str, body: bytes, header: str) -> bool:
    return bool(secret) and hmac.compare_digest(signature_for(secret, body), header)


def repository_keys(repo: dict) -> list[str]:
    keys = set()
    for field in ("clone_url", "ssh_url", "html_url", "git_url", "url", "full_name"):
        value = repo.get(field)
        if not isinstance(value, str) or not value:
            continue
        value = value.strip().rstrip("/")
        keys.add(value)
        if value.endswith(".git"):
            keys.add(value[:-4])
        else:
            keys.add(value + ".git")
        keys.add(value + "/")
    return sorted(keys)


def matching_services(repo: dict):
    keys = repository_keys(repo)
    if not keys:
        return []
    q = Q()
    for key in keys:
        q |= Q(repository_url__iexact=key)
    return list(Service.objects.filter(q).select_related("owner"))


def _read_body(request):
    length = request.META.get("CONTENT_LENGTH") or ""
    try:
        declared = int(length) if length else None
    except ValueError:
        declared = None
    if declared is not None and declared > WEBHOOK_MAX_BYTES:
        return None
    body = request.read(WEBHOOK_MAX_BYTES + 1)
    if len(body) > WEBHOOK_MAX_BYTES:
        return None
    return body


def _payload(request, body):
    ctype = (request.META.get("CONTENT_TYPE") or "").split(";")[0].strip()
    if ctype == "application/x-www-form-urlencoded":
        form = parse_qs(body.decode("utf-8", errors="replace"))
        raw = (form.get("payload") or [""])[0]
    else:
        raw = body.decode("utf-8", errors="replace")
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("the payload is not a JSON object")
    return data


@csrf_exempt
@require_POST
def github(request):
    body = _read_body(request)
    if body is None:
        return _error(413, "too_large", f"The body is larger than {WEBHOOK_MAX_BYTES // 2**20} MB.")
    header = request.headers.get("X-Hub-Signature-256", "")
    if not header:
        return _error(401, "unsigned", "The X-Hub-Signature-256 header is missing.")
    try:
        data = _payload(request, body)
    except ValueError as exc:
        return _error(400, "invalid", f"The body is not a JSON payload: {exc}")
    repo = data.get("repository") if isinstance(data.get("repository"), dict) else {}
    candidates = matching_services(repo)
    default = settings.GITHUB_WEBHOOK_SECRET
    verified = [s for s in candidates if _valid(s.webhook_secret or default, body, header)]
    if not verified and not (not candidates and _valid(default, body, header)):
        return _error(
            401,
            "bad_signature",
            "X-Hub-Signature-256 does not match the body signed with this repository's secret.",
        )
    event = request.headers.get("X-GitHub-Event", "")
    delivery = request.headers.get("X-GitHub-Delivery", "")[:100] or None
    if event == "ping":
        return JsonResponse({"ok": True, "event": "ping", "services": [s.slug for s in verified]})
    if event != "push":
        return JsonResponse({"ok": True, "ignored": f"event {event or '(none)'} is not handled"})
    if not verified:
        return JsonResponse({"ok": True, "runs": [], "reason": "no service uses this repository"})
    ref = data.get("ref") or ""
    if not isinstance(ref, str):
        return _error(400, "invalid", "ref: expected a string like refs/heads/main.")
    if data.get("deleted"):
        return JsonResponse({"ok": True, "runs": [], "reason": "branch deleted; nothing to run"})
    if not ref.startswith("refs/heads/"):
        return JsonResponse({"ok": True, "runs": [], "reason": f"{ref} is not a branch"})
    branch = ref.removeprefix("refs/heads/")
    after = data.get("after") or ""
    if not isinstance(after, str) or set(after) == {"0"}:
        after = ""
    head = data.get("head_commit") if isinstance(data.get("head_commit"), dict) else {}
    sender = (data.get("sender") or {}).get("login") or (data.get("pusher") or {}).get("name")
    actor = Actor(
        door="webhook", ip=request.META.get("REMOTE_ADDR"), system_name=f"github:{sender or 'push'}"
    )
    known = dict(
        PipelineConfig.objects.filter(service__in=verified).values_list(
            "service_id", "known_branches"
        )
    )
    runs, skipped, duplicate = [], [], False
    for service in verified:
        if not branch_matches(known.get(service.pk), branch):
            skipped.append(service.slug)
            continue
        author = (head.get("author") or {}).get("name") or ""
        try:
            run, created = services.trigger_run(
                service,
                actor=actor,
                ref=branch,
                commit=after,
                trigger=PipelineRun.Trigger.PUSH,
                delivery_id=delivery,
                commit_message=str(head.get("message") or ""),
                commit_author=str(author),
            )
        except Invalid as exc:
            return _error(400, "invalid", exc.text)
        duplicate = duplicate or not created
        runs.append(
            {
                "id": run.pk,
                "service": service.slug,
                "number": run.number,
                "url": run.get_absolute_url(),
            }
        )
    body = {"ok": True, "runs": runs, "run_id": runs[0]["id"] if runs else None}
    if skipped:
        body["skipped"] = {
            "services": skipped,
            "reason": f"branch {branch!r} not matched by the branch filters",
        }
    if duplicate:
        body["duplicate"] = True
        return JsonResponse(body, status=200)
    return JsonResponse(body, status=202 if runs else 200)
