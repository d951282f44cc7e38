"""GitHub Actions: the recent workflow runs of a service's repository, polled by beat.

A service names its repository with Backstage's annotation ``github.com/project-slug:
org/repo``; ``backline.io/github-actions-workflows: ci.yml,deploy.yml`` (workflow file names,
or ids) narrows it to those workflows, and ``backline.io/github-actions-deploy-workflows:
deploy.yml`` names the ones whose successful runs on the default branch are deployments (DORA).

Every ``GITHUB_ACTIONS_SYNC_SECONDS`` beat asks GitHub, through ``portal.github`` (its ETags,
so an unchanged answer is a 304 that costs no rate limit and writes nothing, and its rate-limit
handling), ``GET /repos/{o}/{r}/actions/runs?per_page=N`` (or, with named workflows,
``/actions/workflows/{file}/runs`` for each), and saves the runs (:class:`ActionsRun`).
A service's answers are all read before anything is written: a 403 (rate limit, no access)
or 404 leaves its runs as they were and its error on :class:`ActionsPoll`, shown on the page.
A rate limit stops the poll for the services not yet read (same message on each).
"""

import re
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from pipelines.github.models import ActionsPoll, ActionsRun
from portal import github
from squads.discovery.models import DiscoveredRepository
from squads.models import Service

PROJECT_SLUG = "github.com/project-slug"
WORKFLOWS = "backline.io/github-actions-workflows"
DEPLOY_WORKFLOWS = "backline.io/github-actions-deploy-workflows"
SLUG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}")
WORKFLOW_RE = re.compile(r"[A-Za-z0-9._-]{1,200}")
KEEP = 200  # runs kept per service (the oldest go)


class NotUsable(ValueError):
    """The service's annotations do not name a repository (or workflows) GitHub can have."""


def repository(service) -> str:
    return ((service.annotations or {}).get(PROJECT_SLUG) or "").strip()


def _names(service, key) -> list[str]:
    raw = str((service.annotations or {}).get(key) or "")
    return [n.strip() for n in raw.split(",") if n.strip()]


def target(service) -> tuple[str, list[str]]:
    """(owner/repo, workflow files) of the service; NotUsable naming the annotation."""
    repo, flows = repository(service), _names(service, WORKFLOWS)
    if not SLUG_RE.fullmatch(repo):
        raise NotUsable(f"annotation {PROJECT_SLUG}: {repo!r} is not owner/repository")
    bad = [f for f in flows if not WORKFLOW_RE.fullmatch(f)]
    if bad:
        raise NotUsable(f"annotation {WORKFLOWS}: {bad[0]!r} is not a workflow file name or id")
    return repo, flows


def _when(value) -> datetime | None:
    return parse_datetime(value) if value else None


def _web_url(url: str) -> str:
    return url if url.startswith(("https://", "http://")) else ""  # a link, never a script


def _row(run: dict) -> dict:
    path = (run.get("path") or "").split("@", 1)[0]  # ".github/workflows/ci.yml[@ref]"
    return {
        "workflow_id": run.get("workflow_id") or 0,
        "workflow_name": (run.get("name") or "")[:200],
        "workflow_file": path.rsplit("/", 1)[-1][:200],
        "run_number": run.get("run_number") or 0,
        "run_attempt": run.get("run_attempt") or 1,
        "event": (run.get("event") or "")[:50],
        "status": (run.get("status") or "")[:20],
        "conclusion": (run.get("conclusion") or "")[:20],
        "head_branch": (run.get("head_branch") or "")[:255],
        "head_sha": (run.get("head_sha") or "")[:64],
        "title": (run.get("display_title") or "")[:300],
        "html_url": _web_url(run.get("html_url") or "")[:500],
        "run_started_at": _when(run.get("run_started_at") or run.get("created_at")),
        "updated_at": _when(run.get("updated_at")),
    }


def fetch(client: github.GitHub, repo: str, flows: list[str]) -> tuple[list[dict], bool]:
    """(the runs, all answers 304) of ``repo`` (only ``flows``' when named)."""
    params = {"per_page": settings.GITHUB_ACTIONS_RUNS}
    paths = [f"/repos/{repo}/actions/workflows/{f}/runs" for f in flows] or [
        f"/repos/{repo}/actions/runs"
    ]
    runs, unchanged = [], True
    for path in paths:
        answer = client.get(path, params=params)
        unchanged = unchanged and answer.cached
        runs.extend((answer.data or {}).get("workflow_runs") or [])
    return runs, unchanged


def _save(service, repo: str, flows: list[str], runs: list[dict]) -> None:
    """The runs read, in one transaction; runs of another repository or of workflows no
    longer named go, and the oldest beyond ``KEEP``."""
    with transaction.atomic():
        for run in runs:
            ActionsRun.objects.update_or_create(
                service=service, run_id=run["id"], defaults={"repository": repo, **_row(run)}
            )
        mine = ActionsRun.objects.filter(service=service)
        mine.exclude(repository=repo).delete()
        if flows:
            ids = [int(f) for f in flows if f.isdigit()]
            mine.exclude(workflow_file__in=flows).exclude(workflow_id__in=ids).delete()
        old = mine.values_list("pk", flat=True)[KEEP:]
        ActionsRun.objects.filter(pk__in=list(old)).delete()
        _note(service, repo, "", flows)


def _note(service, repo: str, error: str, flows: list[str] | None = None) -> None:
    now = timezone.now()
    fields = {"repository": repo, "polled_at": now, "error": error[:2000]}
    if flows is not None:
        fields["workflows"] = ",".join(flows)[:500]
    if not error:
        fields["ok_at"] = now
    ActionsPoll.objects.update_or_create(service=service, defaults=fields)


def sync_service(service, client: github.GitHub) -> str | int:
    """Poll one service: the number of runs saved, "not modified", or the error."""
    try:
        repo, flows = target(service)
    except NotUsable as exc:
        _note(service, repository(service), str(exc))
        return str(exc)
    runs, unchanged = fetch(client, repo, flows)  # GitHubError: the caller notes it
    same = ActionsPoll.objects.filter(
        service=service, repository=repo, workflows=",".join(flows)[:500], ok_at__isnull=False
    )
    if unchanged and same.exists():  # every answer a 304, for what was saved: nothing to do
        _note(service, repo, "")
        return "not modified"
    _save(service, repo, flows, runs)
    return len(runs)


def _client(clients: dict, repo: str) -> github.GitHub:
    """The client of the installation discovery found ``repo`` in (default: the configured)."""
    found = DiscoveredRepository.objects.filter(full_name=repo).values_list(
        "installation_id", flat=True
    )
    installation = next(iter(found), 0)
    if installation not in clients:
        clients[installation] = github.GitHub(installation)
    return clients[installation]


def sync_runs() -> dict:
    """Beat: poll every service that names a GitHub repository."""
    if not github.configured():
        return {}
    clients: dict = {}
    out: dict = {}
    services = list(Service.objects.filter(annotations__has_key=PROJECT_SLUG).order_by("pk"))
    for i, service in enumerate(services):
        try:
            out[service.slug] = sync_service(service, _client(clients, repository(service)))
        except github.RateLimited as exc:
            for rest in services[i:]:  # every call would be refused: try again next time
                _note(rest, repository(rest), str(exc))
                out[rest.slug] = str(exc)
            break
        except github.GitHubError as exc:
            _note(service, repository(service), str(exc))
            out[service.slug] = str(exc)
    return out


def recent(service, limit: int = 10):
    """The service's latest runs and its poll (None: never polled)."""
    runs = list(ActionsRun.objects.filter(service=service)[:limit])
    return runs, ActionsPoll.objects.filter(service=service).first()


def workflow_names(service) -> list[str]:
    return _names(service, WORKFLOWS)


def deploy_workflows(service) -> set[str]:
    return set(_names(service, DEPLOY_WORKFLOWS))
