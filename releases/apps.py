from django.apps import AppConfig

# outbound event types releases emit (README, "Outbound events")
EVENT_TYPES = {
    "release.started": "A release started (or was retried).",
    "release.promoted": "A paused release was promoted (one step or to 100 %).",
    "release.paused": "A release paused (for a promote, a timed pause or a human decision).",
    "release.succeeded": "A release reached 100 % and finished.",
    "release.aborted": "A release was aborted: traffic back to stable.",
    "release.failed": "A release's analysis failed: rolled back.",
    "service.scaled": "A service was scaled in an environment (by hand, API or schedule).",
}


class ReleasesConfig(AppConfig):
    """Canary releases: environments, strategies, analysis, deploy drivers, the controller.

    Its tables keep their ``pipelines_*`` names (the models lived in the pipelines app before).
    """

    name = "releases"

    def ready(self):
        from portal import registry
        from portal.events import register_event_type
        from releases import (
            argo,
            board,
            collectors,
            dora,
            drivers,
            haproxy,
            kubernetes,
            pipeline,
            scaling,
            schedule,
            scorecard,
            sync,
        )
        from squads import scorecards

        registry.urls("releases.urls", api="releases.api_urls")
        registry.nav("Releases", "releases:release_list", "releases", order=40)
        registry.nav_section("releases", "releases")
        registry.beat(schedule.BEAT_SCHEDULE)
        registry.demo_seed("releases.demo", order=20)
        registry.board_section(board.board_section)
        registry.panel("service", "pipelines/releases/service_panel.html", order=10)
        registry.panel("service", "releases/runtime_panel.html", order=12)
        registry.chart_marks(scaling.scale_marks)
        scorecards.register(scorecard.SOURCE)
        registry.collector(collectors.release_families)
        registry.deployment_source(
            registry.DeploymentSource("releases", dora.deployments_from_releases, priority=10)
        )
        registry.step_kind("release", pipeline.run_release_step)
        sync.register()
        for driver in (haproxy.HAProxyDriver, kubernetes.KubernetesDriver, argo.ArgoRolloutsDriver):
            drivers.register_driver(driver)
        for name, description in EVENT_TYPES.items():
            register_event_type(name, description)
