from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "metrics"

    def ready(self):
        from django.db.models.signals import post_delete

        from metrics.models import Series, drop_samples

        post_delete.connect(drop_samples, sender=Series, dispatch_uid="metrics-drop-samples")
