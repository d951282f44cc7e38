"""Scorecard rule from infra: the service's Terraform workspaces have no drift."""

from collections import defaultdict

from infra.models import DriftStatus, Workspace
from squads.scorecards import Rule, ScorecardSource


def load(service_ids) -> dict:
    """{service_id: [drift statuses of its workspaces]} in one query."""
    statuses = defaultdict(list)
    rows = Workspace.services.through.objects.filter(service_id__any=list(service_ids)).values_list(
        "service_id", "workspace__drift_status"
    )
    for service_id, status in rows:
        statuses[service_id].append(status)
    return {"drift": dict(statuses)}


# what load() and the rules read: changes to these refresh cached catalog rows (squads.cache)
CATALOG_INPUTS = {"infra.Workspace": {"services", "drift_status"}}


def _no_drift(service, ctx):
    statuses = ctx["infra"]["drift"].get(service.pk)
    if not statuses:
        return None  # no workspace: the rule does not apply
    return DriftStatus.DRIFTED not in statuses


RULES = [
    Rule(
        "infra_no_drift",
        "Terraform workspaces have no drift",
        "silver",
        _no_drift,
        help="The latest scheduled drift check of every linked workspace found no change made "
        "outside Terraform.",
    )
]

# registered by InfraConfig.ready() (squads.scorecards.register)
SOURCE = ScorecardSource("infra", tuple(RULES), load, CATALOG_INPUTS, order=30)
