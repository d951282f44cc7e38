from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Portal"

    def ready(self):
        from portal import (
            collectors,
            events,
            limits,
            lookups,
            registry,
            schedule,
            schema,  # noqa: F401 - registers OpenAPI extensions
            urlguard,
        )

        urlguard.policy()  # a bad BACKLINE_OUTBOUND_ALLOW / _DENY entry fails at start-up

        collectors.register()
        limits.connect()
        events.register()
        lookups.register()
        registry.beat(schedule.BEAT_SCHEDULE)
