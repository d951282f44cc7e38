from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "metrics"

    def ready(self):
        from django.db.models.signals import post_delete, post_save

        from metrics.models import Series, drop_samples
        from metrics.scrape import service_saved
        from squads.models import Service

        post_delete.connect(drop_samples, sender=Series, dispatch_uid="metrics-drop-samples")
        post_save.connect(service_saved, sender=Service, dispatch_uid="metrics-sync-targets")
