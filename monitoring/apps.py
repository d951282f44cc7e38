from django.apps import AppConfig

# outbound event types alerting emits (README, "Outbound events")
EVENT_TYPES = {
    "alert.firing": "An alert of one of the squad's services started firing.",
    "alert.resolved": "A firing alert resolved.",
}


class MonitoringConfig(AppConfig):
    name = "monitoring"

    def ready(self):
        from monitoring import board, notify, schedule, scorecard
        from monitoring.collectors import monitoring_families
        from portal import registry
        from portal.events import register_event_type
        from squads import scorecards

        registry.collector(monitoring_families)
        registry.urls("monitoring.urls", api="monitoring.api.urls")
        registry.nav("Dashboards", "monitoring:dashboard_index", "dashboards", order=60)
        registry.nav("Alerts", "monitoring:alert_list", "alerts", order=70)
        registry.nav_section("monitoring", "dashboards")
        registry.beat(schedule.BEAT_SCHEDULE)
        registry.demo_seed("monitoring.demo", order=30)
        registry.board_section(board.board_section)
        registry.panel("service", "monitoring/service_panel.html", order=30)
        registry.panel("squad", "monitoring/squad_panel.html", order=30)
        scorecards.register(scorecard.SOURCE)
        notify.register()
        for name, description in EVENT_TYPES.items():
            register_event_type(name, description)
