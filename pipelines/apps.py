from django.apps import AppConfig


class PipelinesConfig(AppConfig):
    name = "pipelines"

    def ready(self):
        from pipelines import board, catalog, collectors, dora, schedule, scorecard
        from pipelines.webhooks import RECEIVER
        from portal import registry
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
        register_receiver(RECEIVER)
