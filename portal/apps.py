from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Portal"

    def ready(self):
        from portal import (
            events,
            schema,  # noqa: F401 - registers OpenAPI extensions
        )

        events.register()
