"""Infra's receiver of verified GitHub pushes (the endpoint is ``portal.inbound``;
``/hooks/terraform`` is an alias of ``/hooks/github``).

A git workspace is reached when its ``repository_url`` is one of the payload repository's forms
and the body was signed with the secret of a service linked to it or ``GITHUB_WEBHOOK_SECRET``.
A push to the workspace's branch that touches files under its path starts a plan.
"""

from infra import services
from infra.models import Workspace
from portal.inbound import Match, Push, Receiver, repository_keys, using_repository


def changed_paths(data) -> list[str] | None:
    """Files touched by the pushed commits; None when the payload does not list them."""
    commits = data.get("commits")
    if not isinstance(commits, list) or not commits:
        return None
    paths = []
    for c in commits:
        if isinstance(c, dict):
            for key in ("added", "modified", "removed"):
                files = c.get(key)
                paths += [p for p in files if isinstance(p, str)] if isinstance(files, list) else []
    return paths


def touches(path: str, paths) -> bool:
    prefix = path.strip("/")
    if paths is None or not prefix:
        return True
    return any(p == prefix or p.startswith(prefix + "/") for p in paths)


def _git_workspaces():
    return Workspace.objects.filter(source=Workspace.Source.GIT)


def _secrets(keys) -> set[str]:
    rows = using_repository(_git_workspaces(), keys).exclude(services__webhook_secret="")
    return {s for s in rows.values_list("services__webhook_secret", flat=True) if s}


def _match(repo, signed_with, default) -> Match:
    keys = repository_keys(repo)
    candidates = list(using_repository(_git_workspaces(), keys).prefetch_related("services"))

    def signed(ws):
        secrets = {s.webhook_secret for s in ws.services.all() if s.webhook_secret} | {default}
        return bool(secrets & signed_with)

    verified = [ws for ws in candidates if signed(ws)]
    return Match(candidates, verified, [ws.slug for ws in verified])


def _push(push: Push, verified: list) -> dict:
    if push.kind != "branch":
        return {"runs": [], "reason": f"{push.ref} is not a branch push"}
    paths = changed_paths(push.data)
    runs = []
    for ws in verified:
        if ws.ref != push.name or not touches(ws.path, paths):
            continue
        run = services.queue_run(
            ws, actor=push.actor, message=f"push to {push.name}: {push.message[:200]}"
        )
        runs.append({"id": run.pk, "kind": "terraform", "workspace": ws.slug, "number": run.number})
    return {"runs": runs}


RECEIVER = Receiver(name="infra", label="workspaces", secrets=_secrets, match=_match, push=_push)
