from django.conf import settings

BEAT_SCHEDULE = {
    "squads.refresh_locations": {
        "task": "squads.tasks.refresh_locations",
        "schedule": float(settings.CATALOG_LOCATION_REFRESH_SECONDS),
        "options": {"expires": float(settings.CATALOG_LOCATION_REFRESH_SECONDS)},
    },
}
# issue 18: GitHub discovery (a no-op until GitHub is configured)
BEAT_SCHEDULE["squads.discover_github"] = {
    "task": "squads.tasks.discover_github",
    "schedule": float(settings.GITHUB_DISCOVERY_SECONDS),
    "options": {"expires": float(settings.GITHUB_DISCOVERY_SECONDS)},
}
