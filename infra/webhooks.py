"""``POST /hooks/terraform``: a GitHub push to a git workspace's branch that touches files
under its path starts a plan (same signature rules as the pipelines webhook: the secret of a
linked service, or ``GITHUB_WEBHOOK_SECRET``)."""

import json

from django.conf import settings
from django.db.models import Q
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from infra import services
from infra.models import Workspace
from pipelines.webhooks import _valid, repository_keys
from portal.actors import Actor

MAX_BYTES = 25 * 2**20


def _error(status, code, message):
    return JsonResponse({"code": code, "message": message}, status=status)


def changed_paths(data) -> list[str] | None:
    """Files touched by the pushed commits; None when the payload does not list them."""
    commits = data.get("commits")
    if not isinstance(commits, list) or not commits:
        return None
    paths = []
    for c in commits:
        if isinstance(c, dict):
            for key in ("added", "modified", "removed"):
                paths += [p for p in c.get(key) or [] if isinstance(p, str)]
    return paths


def touches(path: str, paths) -> bool:
    prefix = path.strip("/")
    if paths is None or not prefix:
        return True
    return any(p == prefix or p.startswith(prefix + "/") for p in paths)


@csrf_exempt
@require_POST
def github(request):
    if int(request.META.get("CONTENT_LENGTH") or 0) > MAX_BYTES:
        return _error(413, "too_large", "The body is larger than 25 MB.")
    body = request.body
    header = request.headers.get("X-Hub-Signature-256", "")
    if not header:
        return _error(401, "unsigned", "The X-Hub-Signature-256 header is missing.")
    try:
        data = json.loads(body.decode("utf-8", errors="replace"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        return _error(400, "invalid", f"The body is not a JSON payload: {exc}")
    repo = data.get("repository") if isinstance(data.get("repository"), dict) else {}
    q = Q()
    for key in repository_keys(repo):
        q |= Q(repository_url__iexact=key)
    candidates = (
        list(Workspace.objects.filter(q, source=Workspace.Source.GIT).prefetch_related("services"))
        if q
        else []
    )
    default = settings.GITHUB_WEBHOOK_SECRET

    def verified(ws):
        secrets = {s.webhook_secret for s in ws.services.all() if s.webhook_secret} | {default}
        return any(_valid(secret, body, header) for secret in secrets)

    matched = [ws for ws in candidates if verified(ws)]
    if not matched and not (not candidates and _valid(default, body, header)):
        return _error(401, "bad_signature", "X-Hub-Signature-256 does not match the body.")
    event = request.headers.get("X-GitHub-Event", "")
    if event != "push":
        return JsonResponse({"ok": True, "ignored": f"event {event or '(none)'} is not handled"})
    ref = data.get("ref") if isinstance(data.get("ref"), str) else ""
    if data.get("deleted") or not ref.startswith("refs/heads/"):
        return JsonResponse(
            {"ok": True, "runs": [], "reason": f"{ref or 'ref'} is not a branch push"}
        )
    branch = ref.removeprefix("refs/heads/")
    paths = changed_paths(data)
    sender = (data.get("sender") or {}).get("login") or (data.get("pusher") or {}).get("name")
    actor = Actor(
        door="webhook", ip=request.META.get("REMOTE_ADDR"), system_name=f"github:{sender or 'push'}"
    )
    head = data.get("head_commit") if isinstance(data.get("head_commit"), dict) else {}
    runs = []
    for ws in matched:
        if ws.ref != branch or not touches(ws.path, paths):
            continue
        run = services.queue_run(
            ws, actor=actor, message=f"push to {branch}: {str(head.get('message') or '')[:200]}"
        )
        runs.append({"id": run.pk, "workspace": ws.slug, "number": run.number})
    return JsonResponse({"ok": True, "runs": runs}, status=202 if runs else 200)
