"""Discovery's receiver of verified GitHub deliveries (the endpoint is ``portal.inbound``):
a push to a discovered repository's default branch that adds, changes or removes its
descriptor (or a file the descriptor's locations lead to) queues a scan of that repository; ``installation`` / ``installation_repositories``
events queue a scan of the installation. Signed with ``GITHUB_WEBHOOK_SECRET``."""

from portal.celery import enqueue
from portal.inbound import Match, Push, Receiver
from squads.discovery.models import DiscoveredRepository

SCAN_REPOSITORY = "squads.tasks.discover_repository"
SCAN_INSTALLATION = "squads.tasks.discover_github"


def _match(repo, signed_with, default) -> Match:
    name = repo.get("full_name") if isinstance(repo, dict) else None
    rows = (
        list(DiscoveredRepository.objects.filter(full_name__iexact=name))
        if isinstance(name, str)
        else []
    )
    verified = rows if default and default in signed_with else []
    return Match(rows, verified, [r.full_name for r in verified])


def touched(push: Push, path: str) -> bool:
    commits = push.data.get("commits")
    for commit in commits if isinstance(commits, list) else []:
        if isinstance(commit, dict) and any(
            path in (commit.get(k) or []) for k in ("added", "modified", "removed")
        ):
            return True
    return False


def _push(push: Push, verified: list) -> dict:
    queued = [
        row.full_name
        for row in verified
        if push.kind == "branch"
        and push.name == row.default_branch
        and any(touched(push, path) for path in {row.path, *row.files})
    ]
    for name in queued:
        enqueue(SCAN_REPOSITORY, name)
    return {"runs": [], "discovery": queued} if queued else {"runs": []}


def _installation(event: str, data: dict) -> dict:
    installation = data.get("installation") if isinstance(data.get("installation"), dict) else {}
    inst_id = installation.get("id") if isinstance(installation.get("id"), int) else 0
    if data.get("action") in (
        "created",
        "added",
        "removed",
        "unsuspend",
        "new_permissions_accepted",
    ):
        enqueue(SCAN_INSTALLATION, inst_id)
        return {"discovery": "scan queued", "message": f"{event} {data.get('action')}: scan queued"}
    return {"message": f"{event} {data.get('action') or ''}: nothing to do".replace("  ", " ")}


RECEIVER = Receiver(
    name="discovery",
    label="repositories",
    secrets=lambda keys: set(),
    match=_match,
    push=_push,
    installation=_installation,
)
