"""Scorecard rules from monitoring: observable (metrics endpoints), alerted (rules), and no
critical alert firing. Two queries for any number of services."""

from monitoring.models import Alert, AlertRule, Severity
from portal.lookups import many
from squads.scorecards import Rule, ScorecardSource


def load(service_ids) -> dict:
    ids = many(service_ids)
    return {
        "has_rules": set(
            AlertRule.objects.filter(service_id__any=ids, enabled=True).values_list(
                "service_id", flat=True
            )
        ),
        "critical_firing": set(
            Alert.objects.filter(
                service_id__any=ids, state=Alert.State.FIRING, severity=Severity.CRITICAL
            ).values_list("service_id", flat=True)
        ),
    }


# what load() and the rules read: changes to these refresh cached catalog rows (squads.cache)
CATALOG_INPUTS = {
    "monitoring.AlertRule": {"service", "enabled"},
    "monitoring.Alert": {"service", "state", "severity"},
}


def _service_only(check):
    return lambda s, ctx: check(s, ctx) if s.type in ("service", "website") else None


RULES = [
    Rule(
        "has_metrics",
        "Exposes metrics",
        "silver",
        _service_only(lambda s, ctx: bool(s.metrics_urls)),
        help="metrics_urls lists at least one Prometheus /metrics endpoint.",
    ),
    Rule(
        "has_alert_rules",
        "Has alert rules",
        "silver",
        _service_only(lambda s, ctx: s.pk in ctx["monitoring"]["has_rules"]),
        help="At least one enabled alert rule.",
    ),
    Rule(
        "no_critical_alert",
        "No critical alert firing",
        "gold",
        _service_only(lambda s, ctx: s.pk not in ctx["monitoring"]["critical_firing"]),
    ),
]

# registered by MonitoringConfig.ready() (squads.scorecards.register)
SOURCE = ScorecardSource("monitoring", tuple(RULES), load, CATALOG_INPUTS, order=20)
