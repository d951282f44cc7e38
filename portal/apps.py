from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Portal"

    def ready(self):
        from portal import (
            collectors,
            events,
            limits,
            registry,
            schedule,
            schema,  # noqa: F401 - registers OpenAPI extensions
        )

        collectors.register()
        limits.connect()
        events.register()
        registry.beat(schedule.BEAT_SCHEDULE)
