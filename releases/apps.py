from django.apps import AppConfig


class ReleasesConfig(AppConfig):
    """Canary releases: environments, strategies, analysis, deploy drivers, the controller.

    Its tables keep their ``pipelines_*`` names (the models lived in the pipelines app before).
    """

    name = "releases"

    def ready(self):
        from portal import registry
        from releases import board, collectors, dora, pipeline, schedule, scorecard
        from squads import scorecards

        registry.urls("releases.urls", api="releases.api_urls")
        registry.nav("Releases", "releases:release_list", "releases", order=40)
        registry.nav_section("releases", "releases")
        registry.beat(schedule.BEAT_SCHEDULE)
        registry.demo_seed("releases.demo", order=20)
        registry.board_section(board.board_section)
        registry.panel("service", "pipelines/releases/service_panel.html", order=10)
        scorecards.register(scorecard.SOURCE)
        registry.collector(collectors.release_families)
        registry.deployment_source(
            registry.DeploymentSource("releases", dora.deployments_from_releases, priority=10)
        )
        registry.step_kind("release", pipeline.run_release_step)
