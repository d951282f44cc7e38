from django.apps import AppConfig

# outbound event types the catalog emits (README, "Outbound events")
EVENT_TYPES = {
    "catalog.service.created": "A service was added to the catalog.",
    "catalog.service.updated": "A service's fields, tags, dependencies or owner changed.",
    "catalog.service.deleted": "A service was removed from the catalog.",
    "catalog.imported": "A Backstage import created or changed the squad's services.",
}


class SquadsConfig(AppConfig):
    name = "squads"

    def ready(self):
        from portal.events import register_event_type
        from squads import cache

        cache.connect()
        for name, description in EVENT_TYPES.items():
            register_event_type(name, description)
