from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "metrics"

    def ready(self):
        from django.db.models.signals import post_delete

        from metrics.models import Series

        post_delete.connect(_drop_samples, sender=Series, dispatch_uid="metrics-drop-samples")


def _drop_samples(sender, instance, **kwargs):
    """Samples have no foreign-key constraint (cheap inserts); remove them with their series."""
    from django.db import connection

    from metrics.models import Sample

    with connection.cursor() as cur:
        cur.execute(f"DELETE FROM {Sample._meta.db_table} WHERE series_id = %s", [instance.pk])
