from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Portal"

    def ready(self):
        from portal import (
            collectors,
            events,
            lookups,
            registry,
            schedule,
            schema,  # noqa: F401 - registers OpenAPI extensions
        )

        collectors.register()
        events.register()
        lookups.register()
        registry.beat(schedule.BEAT_SCHEDULE)
