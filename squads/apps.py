from django.apps import AppConfig

# outbound event types the catalog emits (README, "Outbound events")
EVENT_TYPES = {
    "catalog.service.created": "A service was added to the catalog.",
    "catalog.service.updated": "A service's fields, tags, dependencies or owner changed.",
    "catalog.service.deleted": "A service was removed from the catalog.",
    "catalog.imported": "A Backstage import created or changed the squad's services.",
    "catalog.discovery.failed": "GitHub discovery could not import a repository's descriptor.",
}


class SquadsConfig(AppConfig):
    name = "squads"

    def ready(self):
        from django.urls import register_converter

        from portal import registry
        from portal.events import register_event_type
        from portal.inbound import register_receiver
        from squads import cache, home, schedule, stitch
        from squads.api import lean
        from squads.converters import EntitySlugConverter
        from squads.discovery import webhooks as discovery_webhooks

        cache.connect()
        lean.register()  # the hottest service reads, answered before Django (portal.leanpath)
        stitch.connect()
        register_converter(EntitySlugConverter, "entity")  # dotted Backstage names
        registry.urls("squads.urls", api="squads.api.urls")
        registry.nav("Catalog", "squads:service_list", "catalog", order=10)
        registry.nav("Squads", "squads:squad_list", "squads", order=20)
        registry.nav_section("squads", "catalog")
        registry.beat(schedule.BEAT_SCHEDULE)
        registry.home_context(home.home_context)
        registry.member_squads(home.member_squads)
        register_receiver(discovery_webhooks.RECEIVER)  # issue 18: GitHub discovery
        for name, description in EVENT_TYPES.items():
            register_event_type(name, description)
