from django.apps import AppConfig

# outbound event types alerting emits (README, "Outbound events")
EVENT_TYPES = {
    "alert.firing": "An alert of one of the squad's services started firing.",
    "alert.resolved": "A firing alert resolved.",
}


class MonitoringConfig(AppConfig):
    name = "monitoring"

    def ready(self):
        from monitoring import notify
        from monitoring.collectors import register
        from portal.events import register_event_type

        register()
        notify.register()
        for name, description in EVENT_TYPES.items():
            register_event_type(name, description)

        from django.db.models.signals import post_delete

        from monitoring.models import Series

        post_delete.connect(_drop_samples, sender=Series, dispatch_uid="monitoring-drop-samples")


def _drop_samples(sender, instance, **kwargs):
    """Samples have no foreign-key constraint (cheap inserts); remove them with their series."""
    from django.db import connection

    from monitoring.models import Sample

    with connection.cursor() as cur:
        cur.execute(f"DELETE FROM {Sample._meta.db_table} WHERE series_id = %s", [instance.pk])
