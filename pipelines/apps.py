from django.apps import AppConfig

# outbound event types pipelines and releases emit (README, "Outbound events")
EVENT_TYPES = {
    "pipeline.run.queued": "A pipeline run was queued.",
    "pipeline.run.started": "A worker started a pipeline run.",
    "pipeline.run.succeeded": "A pipeline run succeeded.",
    "pipeline.run.failed": "A pipeline run failed.",
    "pipeline.run.canceled": "A pipeline run was canceled.",
    "pipeline.run.timed_out": "A pipeline run hit its timeout.",
    "pipeline.run.lost": "A pipeline run's worker stopped heartbeating.",
    "release.started": "A release started (or was retried).",
    "release.promoted": "A paused release was promoted (one step or to 100 %).",
    "release.paused": "A release paused (for a promote, a timed pause or a human decision).",
    "release.succeeded": "A release reached 100 % and finished.",
    "release.aborted": "A release was aborted: traffic back to stable.",
    "release.failed": "A release's analysis failed: rolled back.",
}


class PipelinesConfig(AppConfig):
    name = "pipelines"

    def ready(self):
        from pipelines.releases import drivers
        from portal.events import register_event_type

        drivers.register()
        for name, description in EVENT_TYPES.items():
            register_event_type(name, description)
