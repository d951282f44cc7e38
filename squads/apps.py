from django.apps import AppConfig


class SquadsConfig(AppConfig):
    name = "squads"

    def ready(self):
        from squads import cache

        cache.connect()
