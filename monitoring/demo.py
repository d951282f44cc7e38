"""Demo content for `manage.py seed_demo`: alert rules on the demo fleet's services, a little
alert history (for the alerts page and DORA's time to restore). Idempotent."""

from datetime import timedelta

from django.utils import timezone

from monitoring.models import Alert, AlertEvent, AlertRule
from squads.models import Service

RULES = [
    (
        "playback-api",
        "Canary error ratio above 2 %",
        "error_ratio",
        "canary",
        ">",
        0.02,
        60,
        "critical",
    ),
    ("playback-api", "Stable p95 above 250 ms", "p95", "stable", ">", 0.25, 120, "warning"),
    ("search-api", "Error ratio above 5 %", "error_ratio", "stable", ">", 0.05, 60, "critical"),
    ("home-feed-api", "p99 above 1 s", "p99", "stable", ">", 1.0, 300, "warning"),
    ("payments-gateway", "No traffic", "request_rate", "stable", "<", 0.1, 120, "critical"),
]


def seed(stdout=None):
    made = 0
    for slug, name, signal, track, cmp, threshold, for_s, severity in RULES:
        service = Service.objects.filter(slug=slug).first()
        if service is None:
            continue
        rule, created = AlertRule.objects.get_or_create(
            service=service,
            name=name,
            defaults={
                "signal": signal,
                "track": track,
                "comparison": cmp,
                "threshold": threshold,
                "for_seconds": for_s,
                "severity": severity,
            },
        )
        made += created
        if created and slug == "search-api":
            # two past incidents, resolved: history for the alerts page and DORA
            now = timezone.now()
            for days, minutes in ((9, 42), (3, 18)):
                start = now - timedelta(days=days)
                alert = Alert.objects.create(
                    rule=rule,
                    service=service,
                    state="resolved",
                    severity=severity,
                    started_at=start,
                    fired_at=start + timedelta(minutes=1),
                    resolved_at=start + timedelta(minutes=1 + minutes),
                    value=0.12,
                    last_value=0.01,
                    summary=f"{service.name}: {name}",
                )
                for at, frm, to in (
                    (alert.started_at, "", "pending"),
                    (alert.fired_at, "pending", "firing"),
                    (alert.resolved_at, "firing", "resolved"),
                ):
                    AlertEvent.objects.create(alert=alert, at=at, from_state=frm, to_state=to)
    if stdout is not None:
        stdout.write(f"monitoring: {made} alert rule(s) created")
