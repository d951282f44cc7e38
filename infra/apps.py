from django.apps import AppConfig

# outbound event types Terraform work emits (README, "Outbound events")
EVENT_TYPES = {
    "infra.drift_detected": "A drift check found the workspace's real resources changed.",
    "infra.run.planning": "A worker started planning a Terraform run.",
    "infra.run.planned": "A Terraform run's plan is ready (awaits confirmation or applies).",
    "infra.run.planned_and_finished": "A Terraform plan found no changes; the run is over.",
    "infra.run.applying": "A worker started applying a confirmed Terraform run.",
    "infra.run.applied": "A Terraform run was applied.",
    "infra.run.errored": "A Terraform run failed.",
    "infra.run.canceled": "A Terraform run was canceled.",
    "infra.run.discarded": "A Terraform run's plan was discarded.",
    "infra.run.lost": "A Terraform run's worker stopped heartbeating.",
}


class InfraConfig(AppConfig):
    name = "infra"

    def ready(self):
        from infra import board, schedule, scorecard
        from infra.metrics import register
        from infra.webhooks import RECEIVER
        from portal import registry
        from portal.events import register_event_type
        from portal.inbound import register_receiver
        from squads import scorecards

        register()
        register_receiver(RECEIVER)
        registry.urls("infra.urls", api="infra.api.urls")
        registry.nav("Infrastructure", "infra:workspace_list", "infra", order=50)
        registry.nav_section("infra", "infra")
        registry.beat(schedule.BEAT_SCHEDULE)
        registry.demo_seed("infra.demo", order=40)
        registry.board_section(board.board_section)
        registry.panel("service", "infra/service_panel.html", order=40)
        registry.panel("squad", "infra/squad_panel.html", order=40)
        scorecards.register(scorecard.SOURCE)
        for name, description in EVENT_TYPES.items():
            register_event_type(name, description)
