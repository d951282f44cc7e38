from django.apps import AppConfig


class SquadsConfig(AppConfig):
    name = "squads"

    def ready(self):
        from django.urls import register_converter

        from portal import registry
        from squads import cache, home, schedule
        from squads.converters import EntitySlugConverter

        cache.connect()
        register_converter(EntitySlugConverter, "entity")  # dotted Backstage names
        registry.urls("squads.urls", api="squads.api.urls")
        registry.nav("Catalog", "squads:service_list", "catalog", order=10)
        registry.nav("Squads", "squads:squad_list", "squads", order=20)
        registry.nav_section("squads", "catalog")
        registry.beat(schedule.BEAT_SCHEDULE)
        registry.home_context(home.home_context)
        registry.member_squads(home.member_squads)
