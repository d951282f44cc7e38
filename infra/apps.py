from portal import domain_app

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


class InfraConfig(domain_app.DomainAppConfig):
    name = "infra"
    nav_items = (("Infrastructure", "infra:workspace_list", "infra", 50),)
    demo_order, panel_order = 40, 40
    event_types = EVENT_TYPES

    def register(self):
        from infra import metrics, scorecard
        from infra.webhooks import RECEIVER
        from portal.inbound import register_receiver
        from squads import scorecards

        metrics.register()
        register_receiver(RECEIVER)
        scorecards.register(scorecard.SOURCE)
