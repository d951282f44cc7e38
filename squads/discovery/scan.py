"""Discovery: every repository of the GitHub installation is read for its descriptor
(``GITHUB_DISCOVERY_PATH``, default ``catalog-info.yaml``) and imported through the Backstage
importer, all-or-nothing per repository.

A scan lists ``/installation/repositories`` with ETags: a page answered 304, or a repository
whose ``pushed_at`` is the one last seen, is not read again (no content request); otherwise the
descriptor is fetched with its ETag. Errors (an invalid descriptor, a GitHub 403 or rate limit,
an entity another repository already defines) are kept on the repository's row, shown on the
discovery page and sent to the owning squad as ``catalog.discovery.failed``; nothing of that
repository is imported. Entities a repository no longer defines (the file or the entity gone,
the repository gone from the installation) are marked orphaned (audited), and removed after
``GITHUB_ORPHAN_GRACE_SECONDS`` (Backstage's orphan strategy; Group and User entities are only
marked: squads and people are never deleted by discovery).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import yaml
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from portal import audit, events, github, safeparse
from portal.actors import Actor
from squads.backstage.importer import import_catalog
from squads.backstage.refs import slug_for
from squads.backstage.report import ImportFailed
from squads.backstage.sources import Source
from squads.discovery import follow
from squads.discovery.models import DiscoveredEntity, DiscoveredRepository
from squads.models import Api, Domain, Resource, Service, Squad, System

ACTOR = Actor.system("github.discovery", door="beat")
REMOVABLE = {
    "component": Service,
    "api": Api,
    "system": System,
    "domain": Domain,
    "resource": Resource,
}
Status = DiscoveredRepository.Status


@dataclass
class ScanReport:
    repositories: int = 0
    imported: int = 0
    unchanged: int = 0
    missing: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    orphaned: int = 0
    removed: int = 0

    def as_dict(self) -> dict:
        return {**self.__dict__, "errors": dict(self.errors)}


def scan_installation(installation_id: int = 0) -> ScanReport:
    """Scan every repository of the installation; a failing repository is reported and
    skipped. GitHub failing on the listing, or a rate limit, raises ``github.GitHubError``: the
    scan stops there, and nothing is orphaned on a partial listing."""
    client = github.GitHub(installation_id)
    report = ScanReport()
    seen: set[str] = set()
    for repos, not_modified in client.installation_repository_pages():
        for repo in repos:
            seen.add(repo["full_name"])
            report.repositories += 1
            scan_repository(client, repo, report, listing_unchanged=not_modified)
    gone = DiscoveredRepository.objects.exclude(full_name__in=seen).exclude(status=Status.GONE)
    for row in gone.filter(installation_id__in={0, client.installation_id}):
        _orphan(row, keep=set(), report=report, why="the repository left the installation")
        DiscoveredRepository.objects.filter(pk=row.pk).update(status=Status.GONE)
    report.removed += sweep_orphans()
    return report


def rescan_repository(full_name: str) -> ScanReport:
    """Scan one discovered repository now (a push changed its descriptor)."""
    row = DiscoveredRepository.objects.get(full_name=full_name)
    client = github.GitHub(row.installation_id)
    report = ScanReport(repositories=1)
    repo = {
        "full_name": row.full_name,
        "default_branch": row.default_branch,
        "html_url": row.html_url,
    }
    scan_repository(client, repo, report)
    report.removed += sweep_orphans()
    return report


def _row_for(repo: dict, installation_id: int) -> DiscoveredRepository:
    row, _ = DiscoveredRepository.objects.get_or_create(full_name=repo["full_name"])
    row.installation_id = installation_id
    row.default_branch = repo.get("default_branch") or "main"
    row.html_url = repo.get("html_url") or ""
    return row


def scan_repository(client, repo: dict, report: ScanReport, *, listing_unchanged=False) -> None:
    row = _row_for(repo, client.installation_id)
    path = settings.GITHUB_DISCOVERY_PATH
    pushed = str(repo.get("pushed_at") or "")
    settled = row.status in (Status.OK, Status.MISSING) and row.path == path
    if settled and (listing_unchanged or (pushed and pushed == row.pushed_at)):
        report.unchanged += 1
        row.scanned_at = timezone.now()
        row.save()
        return
    row.path = path
    try:
        text, answer = client.file_text(row.full_name, path, ref=row.default_branch)
    except github.RateLimited:
        raise  # the rest would be refused too: the scan stops, this repository as it was
    except github.GitHubError as exc:
        return _failed(row, f"GitHub: {exc}", [], report)
    if text is None:
        report.missing += 1
        _orphan(row, keep=set(), report=report, why=f"{path} is not in the repository")
        row.status, row.error, row.errors, row.files = Status.MISSING, "", [], [path]
    else:
        ref = row.default_branch
        try:
            found = follow.read_descriptors(client, row.full_name, ref, path, text, answer.cached)
        except ImportFailed as exc:
            row.files = exc.descriptors.paths  # type: ignore[attr-defined]
            texts = _joined(exc.descriptors.files)  # type: ignore[attr-defined]
            return _failed(row, str(exc), [e.as_dict() for e in exc.errors], report, text=texts)
        row.files = found.paths
        if found.cached and row.status == Status.OK:
            report.unchanged += 1
        elif not import_descriptor(row, found.files, report):
            return
    row.pushed_at, row.scanned_at = pushed, timezone.now()
    row.save()


def _joined(files: list[tuple[str, str]]) -> str:
    return "\n---\n".join(text for _path, text in files)


def _entities(text: str) -> set[tuple[str, str]]:
    """The (kind, slug) of each entity of the file; empty when it does not parse (the importer
    then refuses it, naming the line)."""
    try:
        docs = list(safeparse.load_yaml_all(text))
    except (yaml.YAMLError, safeparse.TooComplex, ValueError):
        return set()
    refs = set()
    for doc in docs:
        if not isinstance(doc, dict) or not isinstance(doc.get("metadata"), dict):
            continue
        meta = doc["metadata"]
        name, ns = meta.get("name"), meta.get("namespace") or "default"
        kind = doc.get("kind")
        if isinstance(kind, str) and isinstance(name, str) and isinstance(ns, str):
            if kind.lower() != "location":  # followed, not stored: no entity of its own
                refs.add((kind.lower(), slug_for(ns, name)))
    return refs


def _declared_owner(text: str) -> Squad | None:
    try:
        for doc in safeparse.load_yaml_all(text):
            owner = (doc.get("spec") or {}).get("owner") if isinstance(doc, dict) else None
            if isinstance(owner, str):
                return Squad.objects.filter(slug=owner.split("/")[-1].split(":")[-1]).first()
    except Exception:  # noqa: BLE001 - an unreadable file names no owner; the error says why
        return None
    return None


def import_descriptor(row: DiscoveredRepository, files: list[tuple[str, str]], report) -> bool:
    """Import one repository's descriptor (with the files its locations lead to: ``files``,
    the descriptor first) and record its entities, in one transaction."""
    name, text = f"{row.full_name}/{row.path}", _joined(files)
    sources = [Source(f"{row.full_name}/{p}", t, followed=True) for p, t in files]
    try:
        with transaction.atomic():
            where = {ref: p for p, t in reversed(files) for ref in _entities(t)}
            refs = set(where)
            _refuse_claimed(row, refs)
            import_catalog(sources, None)
            _keep(row, where, report)
    except ImportFailed as exc:
        _failed(row, str(exc), [e.as_dict() for e in exc.errors], report, text=text)
        return False
    except ClaimedElsewhere as exc:
        _failed(row, f"{name}: {exc}", [], report, text=text)
        return False
    owners = Service.objects.filter(slug__in=[s for k, s in refs if k == "component"])
    row.owner = next((s.owner for s in owners.select_related("owner") if s.owner), row.owner)
    row.status, row.error, row.errors, row.imported_at = Status.OK, "", [], timezone.now()
    report.imported += 1
    return True


class ClaimedElsewhere(ValueError):
    pass


def _refuse_claimed(row, refs) -> None:
    for kind, slug in sorted(refs):
        other = (
            DiscoveredEntity.objects.filter(kind=kind, slug=slug, orphaned_at__isnull=True)
            .exclude(repository=row)
            .select_related("repository")
            .first()
        )
        if other is not None:
            where = f"{other.repository.full_name}/{other.repository.path}"
            raise ClaimedElsewhere(f"{kind}:{slug} is already defined by {where}")


def _keep(row, where: dict, report) -> None:
    """Record each entity with the file defining it (``where``: (kind, slug) → path)."""
    for (kind, slug), path in where.items():
        DiscoveredEntity.objects.update_or_create(
            kind=kind, slug=slug, defaults={"repository": row, "orphaned_at": None, "path": path}
        )
    _orphan(row, keep=set(where), report=report, why=f"no longer defined in {row.path}")


def _orphan(row, *, keep: set, report: ScanReport, why: str) -> None:
    now = timezone.now()
    for entity in row.entities.filter(orphaned_at__isnull=True):
        if (entity.kind, entity.slug) in keep:
            continue
        entity.orphaned_at = now
        entity.save(update_fields=["orphaned_at"])
        report.orphaned += 1
        audit.record(ACTOR, "catalog.discovery.orphaned", row,
                     data={"entity": f"{entity.kind}:{entity.slug}", "why": why})  # fmt: skip


def _failed(row, error: str, errors: list, report: ScanReport, *, text: str = "") -> None:
    row.status, row.error, row.errors = Status.ERROR, error[:20000], errors[:200]
    row.scanned_at = timezone.now()
    row.owner = (_declared_owner(text) if text else None) or row.owner
    row.save()
    report.errors[row.full_name] = error[:2000]
    events.emit("catalog.discovery.failed", row.owner, {"repository": row.full_name,
                "file": row.path, "error": error[:2000]})  # fmt: skip


def sweep_orphans(now=None) -> int:
    """Remove entities orphaned longer than the grace period (audited); returns how many."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.GITHUB_ORPHAN_GRACE_SECONDS)
    removed = 0
    stale = DiscoveredEntity.objects.filter(orphaned_at__lte=cutoff, kind__in=list(REMOVABLE))
    for entity in stale.select_related("repository"):
        with transaction.atomic():
            REMOVABLE[entity.kind].objects.filter(slug=entity.slug).delete()
            audit.record(ACTOR, "catalog.discovery.removed", entity.repository,
                         data={"entity": f"{entity.kind}:{entity.slug}"})  # fmt: skip
            entity.delete()
        removed += 1
    return removed
