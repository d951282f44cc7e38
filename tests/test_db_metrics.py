"""The /metrics figures read from the database at scrape time (``portal.collectors.counts``):
one sample per distinct value, counting rows, an empty value written as the given default."""

from django.utils import timezone

from metrics.models import ScrapeTarget
from monitoring.collectors import monitoring_families
from monitoring.models import Alert, AlertRule, Delivery, NotificationChannel
from pipelines.collectors import pipeline_families
from pipelines.models import PipelineRun
from tests.factories import ServiceFactory


def _samples(families):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


def test_counts_by_label_from_the_rows(db, squad):
    svc = ServiceFactory(slug="svc-m", owner=squad, metrics_urls=[])
    now = timezone.now()
    for number, status in enumerate(["succeeded", "succeeded", "failed", "running"], start=1):
        done = status != "running"
        PipelineRun.objects.create(
            service=svc,
            ref="main",
            number=number,
            status=status,
            started_at=now,
            finished_at=now if done else None,
        )
    for i, health in enumerate(("up", "up", "down")):
        ScrapeTarget.objects.create(service=svc, url=f"http://10.0.0.{i}/metrics", health=health)
    rule = AlertRule.objects.create(service=svc, name="Errors", signal="error_ratio", threshold=1)
    alert = Alert.objects.create(rule=rule, service=svc, state="firing", severity="critical")
    channel = NotificationChannel.objects.create(squad=squad, name="c", kind="webhook")
    Delivery.objects.create(alert=alert, channel=channel, event="firing")  # not sent yet

    runs = _samples(pipeline_families())
    assert runs[("backline_pipeline_runs_finished_total", (("status", "succeeded"),))] == 2
    assert runs[("backline_pipeline_runs_finished_total", (("status", "failed"),))] == 1
    assert ("backline_pipeline_runs_finished_total", (("status", "running"),)) not in runs
    mon = _samples(monitoring_families())
    assert mon[("backline_alerts", (("severity", "critical"), ("state", "firing")))] == 1
    assert mon[("backline_alert_deliveries_total", (("status", "pending"),))] == 1
    assert mon[("backline_scrape_targets", (("health", "up"),))] == 2
    assert mon[("backline_scrape_targets", (("health", "down"),))] == 1
