from celery import shared_task

from portal import github
from portal.actors import Actor
from squads.backstage import refresh_all_locations
from squads.discovery import scan


@shared_task(acks_late=True, name="squads.tasks.refresh_locations")
def refresh_locations() -> dict:
    """Re-import every registered Backstage location (beat); a failing location is recorded on
    its row and does not stop the others. Returns ``{target: "ok" | "error"}``."""
    return refresh_all_locations(Actor.system("beat", door="beat"))


@shared_task(acks_late=True, name="squads.tasks.discover_github")
def discover_github(installation_id: int = 0) -> dict:
    """Beat and installation events: scan the installation's repositories (issue 18)."""
    if not github.configured():
        return {"skipped": "GitHub is not configured"}
    return scan.scan_installation(installation_id).as_dict()


@shared_task(acks_late=True, name="squads.tasks.discover_repository")
def discover_repository(full_name: str) -> dict:
    """A push changed a descriptor: scan that one repository now."""
    return scan.rescan_repository(full_name).as_dict()
