"""Scorecard rule from releases: production releases use a canary with analysis."""

from django.db.models import Max

from portal.lookups import many
from releases.models import Release
from squads.scorecards import Rule, ScorecardSource


def load(service_ids) -> dict:
    """{service id: latest production release uses a canary with analysis}."""
    latest = (
        Release.objects.filter(service_id__any=many(service_ids), environment__production=True)
        .order_by()
        .values("service_id")
        .annotate(m=Max("id"))
        .values("m")
    )
    return {
        "production_canary": {
            r.service_id: r.uses_canary_analysis for r in Release.objects.filter(pk__in=latest)
        }
    }


# what load() and the rules read: changes to these refresh cached catalog rows (squads.cache)
CATALOG_INPUTS = {
    "releases.Environment": {"production"},
    "releases.Release": {"service", "environment", "strategy"},
}

RULES = [
    Rule(
        "production_canary",
        "Production releases use a canary with analysis",
        "gold",
        lambda s, ctx: ctx["releases"]["production_canary"].get(s.pk),
        help="The latest production release sent part of the traffic to a canary and ran an "
        "analysis before going further (not applicable until the service has one).",
    ),
]


# registered by ReleasesConfig.ready() (squads.scorecards.register)
def services_in_environments(pks):
    """An environment's ``production`` flag decides which releases the rule reads."""
    return (
        Release.objects.filter(environment_id__in=list(pks))
        .order_by()
        .values_list("service_id", flat=True)
        .distinct()
    )


SOURCE = ScorecardSource(
    "releases",
    tuple(RULES),
    load,
    CATALOG_INPUTS,
    order=15,
    affects={"releases.Environment": services_in_environments},
)
