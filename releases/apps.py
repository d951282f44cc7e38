from portal import domain_app, registry

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


class ReleasesConfig(domain_app.DomainAppConfig):
    """Canary releases: environments, strategies, analysis, deploy drivers, the controller.

    Its tables keep their ``pipelines_*`` names (the models lived in the pipelines app before).
    """

    name = "releases"
    api_urls = "releases.api_urls"
    nav_items = (("Releases", "releases:release_list", "releases", 40),)
    demo_order = 20
    panels = (
        ("service", "pipelines/releases/service_panel.html", 10),
        ("service", "releases/runtime_panel.html", 12),
    )
    event_types = EVENT_TYPES

    def register(self):
        from releases import (
            argo,
            collectors,
            dora,
            drivers,
            haproxy,
            kubernetes,
            pipeline,
            scaling,
            scorecard,
            sync,
        )
        from squads import scorecards

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
