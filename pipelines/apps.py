from portal import domain_app, registry

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


class PipelinesConfig(domain_app.DomainAppConfig):
    name = "pipelines"
    nav_items = (("Pipelines", "pipelines:run_list", "pipelines", 30),)
    demo_order, panel_order = 10, 20
    event_types = EVENT_TYPES

    def register(self):
        from pipelines import approvals, catalog, collectors, dora, jenkins_step, scorecard
        from pipelines.webhooks import RECEIVER
        from portal.inbound import register_receiver
        from squads import cache, scorecards

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
