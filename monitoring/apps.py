from portal import domain_app, registry

# outbound event types alerting emits (README, "Outbound events")
EVENT_TYPES = {
    "alert.firing": "An alert of one of the squad's services started firing.",
    "alert.resolved": "A firing alert resolved.",
}


class MonitoringConfig(domain_app.DomainAppConfig):
    name = "monitoring"
    section = "dashboards"
    nav_items = (
        ("Dashboards", "monitoring:dashboard_index", "dashboards", 60),
        ("Alerts", "monitoring:alert_list", "alerts", 70),
    )
    demo_order, panel_order = 30, 30
    event_types = EVENT_TYPES

    def register(self):
        from monitoring import notify, scorecard
        from monitoring.collectors import monitoring_families
        from squads import scorecards

        registry.collector(monitoring_families)
        scorecards.register(scorecard.SOURCE)
        notify.register()
