from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"

    def ready(self):
        from monitoring import board, schedule, scorecard
        from monitoring.collectors import monitoring_families
        from portal import registry
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
