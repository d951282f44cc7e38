from django.apps import AppConfig


class PipelinesConfig(AppConfig):
    name = "pipelines"

    def ready(self):
        from pipelines.webhooks import RECEIVER
        from portal.inbound import register_receiver

        register_receiver(RECEIVER)
