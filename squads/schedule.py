from django.conf import settings

BEAT_SCHEDULE = {
    "squads.refresh_locations": {
        "task": "squads.tasks.refresh_locations",
        "schedule": float(settings.CATALOG_LOCATION_REFRESH_SECONDS),
        "options": {"expires": float(settings.CATALOG_LOCATION_REFRESH_SECONDS)},
    },
}
