from celery import shared_task

from portal.actors import Actor
from squads.backstage import refresh_all_locations


@shared_task(acks_late=True, name="squads.tasks.refresh_locations")
def refresh_locations() -> dict:
    """Re-import every registered Backstage location (beat); a failing location is recorded on
    its row and does not stop the others. Returns ``{target: "ok" | "error"}``."""
    return refresh_all_locations(Actor.system("beat", door="beat"))
