from django.apps import AppConfig

# outbound event types Terraform work emits (README, "Outbound events")
EVENT_TYPES = {
    "infra.drift_detected": "A drift check found the workspace's real resources changed.",
    "infra.run.planned": "A Terraform run's plan is ready (awaits confirmation or applies).",
    "infra.run.applied": "A Terraform run was applied.",
    "infra.run.errored": "A Terraform run failed (or its worker was lost).",
    "infra.run.discarded": "A Terraform run's plan was discarded.",
}


class InfraConfig(AppConfig):
    name = "infra"

    def ready(self):
        from infra.metrics import register
        from portal.events import register_event_type

        register()
        for name, description in EVENT_TYPES.items():
            register_event_type(name, description)
