"""Registered locations: Backstage catalog files (paths or URLs) re-imported periodically."""

import logging
import os

from django.core.exceptions import PermissionDenied
from django.utils import timezone

from portal import audit
from portal.actors import Actor
from squads.models import Location

from .importer import ImportFailed, import_catalog
from .sources import SourceError, is_url, load_sources

log = logging.getLogger(__name__)


def _normalize(target: str) -> str:
    target = (target or "").strip()
    if not target:
        raise SourceError("a location needs a path or URL")
    if is_url(target):
        return target
    if target.startswith("file://"):
        target = target.removeprefix("file://")
    return os.path.abspath(target)


def register_location(target: str, actor) -> Location:
    """Validate ``target`` by a dry-run import as ``actor`` (raises ``SourceError``,
    ``ImportFailed`` or ``PermissionDenied``), then register it for periodic refresh.

    Only org admins may register locations: beat re-imports them later with full rights (and
    local paths are read from the server's disk)."""
    target = _normalize(target)
    if actor is not None and not actor.is_admin:
        raise PermissionDenied(
            "Only an org admin may register a location: beat re-imports it with full rights."
        )
    report = import_catalog(load_sources([target]), actor, dry_run=True)
    location, created = Location.objects.get_or_create(target=target)
    if actor is not None:
        audit.record(
            actor,
            "catalog.location.register" if created else "catalog.location.revalidate",
            location,
            data={"target": target, "would_create": report.created, "would_update": report.updated},
        )
    return location


def refresh_location(location: Location, actor=None) -> Location:
    """Import one location now and record how it went on the row (never raises for a bad
    catalog: the error is stored in ``last_error``)."""
    actor = actor or Actor.system("locations", door="beat")
    status, error, summary = "ok", "", {}
    try:
        report = import_catalog(load_sources([location.target]), actor)
        summary = {**report.as_dict(), "summary": report.summary}
    except ImportFailed as exc:
        status, error = "error", str(exc)
        summary = {"errors": [e.as_dict() for e in exc.errors]}
    except (SourceError, PermissionDenied) as exc:
        status, error = "error", str(exc)
    except Exception as exc:  # noqa: BLE001 - one bad location must not stop the others
        log.exception("refreshing location %s failed", location.target)
        status, error = "error", f"{exc.__class__.__name__}: {exc}"
    location.last_refreshed_at = timezone.now()
    location.last_status = status
    location.last_error = error[:20000]
    location.last_summary = summary
    location.save(update_fields=["last_refreshed_at", "last_status", "last_error", "last_summary"])
    return location


def refresh_all_locations(actor=None) -> dict:
    """Refresh every registered location; returns ``{target: status}``."""
    actor = actor or Actor.system("locations", door="beat")
    return {loc.target: refresh_location(loc, actor).last_status for loc in Location.objects.all()}
