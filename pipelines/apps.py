from django.apps import AppConfig

# outbound event types pipelines emit (README, "Outbound events")
EVENT_TYPES = {
    "pipeline.run.queued": "A pipeline run was queued.",
    "pipeline.run.started": "A worker started a pipeline run.",
    "pipeline.run.succeeded": "A pipeline run succeeded.",
    "pipeline.run.failed": "A pipeline run failed.",
    "pipeline.run.canceled": "A pipeline run was canceled.",
    "pipeline.run.timed_out": "A pipeline run hit its timeout.",
    "pipeline.run.lost": "A pipeline run's worker stopped heartbeating.",
}


class PipelinesConfig(AppConfig):
    name = "pipelines"

    def ready(self):
        from pipelines import (
            approvals,
            board,
            catalog,
            collectors,
            dora,
            jenkins_step,
            schedule,
            scorecard,
        )
        from pipelines.webhooks import RECEIVER
        from portal import registry
        from portal.events import register_event_type
        from portal.inbound import register_receiver
        from squads import cache, scorecards

        registry.urls("pipelines.urls", api="pipelines.api.urls")
        registry.nav("Pipelines", "pipelines:run_list", "pipelines", order=30)
        registry.nav_section("pipelines", "pipelines")
        registry.beat(schedule.BEAT_SCHEDULE)
        registry.demo_seed("pipelines.demo", order=10)
        registry.board_section(board.board_section)
        registry.panel("service", "pipelines/service_panel.html", order=20)
        registry.panel("squad", "pipelines/squad_panel.html", order=20)
        scorecards.register(scorecard.SOURCE)
        cache.register_column(
            registry.CatalogColumn("last_runs", catalog.last_runs, catalog.CATALOG_INPUTS)
        )
        registry.collector(collectors.pipeline_families)
        registry.deployment_source(
            registry.DeploymentSource("pipeline_runs", dora.deployments_from_pipeline_runs)
        )
        registry.step_kind("approval", approvals.run_approval_step)
        registry.step_kind("jenkins", jenkins_step.run_jenkins_step)
        register_receiver(RECEIVER)
        for name, description in EVENT_TYPES.items():
            register_event_type(name, description)
