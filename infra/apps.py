from django.apps import AppConfig


class InfraConfig(AppConfig):
    name = "infra"

    def ready(self):
        from infra import board, schedule, scorecard
        from infra.metrics import register
        from infra.webhooks import RECEIVER
        from portal import registry
        from portal.inbound import register_receiver
        from squads import scorecards

        register()
        register_receiver(RECEIVER)
        registry.urls("infra.urls", api="infra.api.urls")
        registry.nav("Infrastructure", "infra:workspace_list", "infra", order=50)
        registry.nav_section("infra", "infra")
        registry.beat(schedule.BEAT_SCHEDULE)
        registry.demo_seed("infra.demo", order=40)
        registry.board_section(board.board_section)
        registry.panel("service", "infra/service_panel.html", order=40)
        registry.panel("squad", "infra/squad_panel.html", order=40)
        scorecards.register(scorecard.SOURCE)
