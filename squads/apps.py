from django.apps import AppConfig


class SquadsConfig(AppConfig):
    name = "squads"

    def ready(self):
        from django.urls import register_converter

        from squads import cache
        from squads.converters import EntitySlugConverter

        cache.connect()
        register_converter(EntitySlugConverter, "entity")  # dotted Backstage names
