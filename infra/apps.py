from django.apps import AppConfig


class InfraConfig(AppConfig):
    name = "infra"

    def ready(self):
        from infra.metrics import register
        from infra.webhooks import RECEIVER
        from portal.inbound import register_receiver

        register()
        register_receiver(RECEIVER)
