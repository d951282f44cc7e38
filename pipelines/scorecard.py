"""Scorecard rules from pipelines: has a pipeline; last run on the default branch succeeded;
production releases use a canary with analysis."""

from django.db.models import F, Max, Q

from pipelines.models import PipelineConfig, PipelineRun, RunStatus
from squads.scorecards import Rule


def load(service_ids) -> dict:
    ids = list(service_ids)
    with_spec = set(
        PipelineConfig.objects.filter(service_id__in=ids)
        .exclude(spec_yaml="")
        .values_list("service_id", flat=True)
    ) | set(
        PipelineRun.objects.filter(service_id__in=ids, spec__isnull=False)
        .order_by()
        .values_list("service_id", flat=True)
        .distinct()
    )
    latest_default = (
        PipelineRun.objects.filter(service_id__in=ids, ref=F("service__default_branch"))
        .filter(~Q(status__in=[RunStatus.QUEUED, RunStatus.RUNNING]))
        .order_by()
        .values("service_id")
        .annotate(m=Max("id"))
        .values("m")
    )
    default_status = dict(
        PipelineRun.objects.filter(pk__in=latest_default).values_list("service_id", "status")
    )
    return {
        "has_pipeline": with_spec,
        "default_status": default_status,
        "production_canary": _production_canary(ids),
    }


def _production_canary(ids) -> dict:
    """{service id: latest production release uses a canary with analysis} (releases rule)."""
    from pipelines.releases.models import Release

    latest = (
        Release.objects.filter(service_id__in=ids, environment__production=True)
        .order_by()
        .values("service_id")
        .annotate(m=Max("id"))
        .values("m")
    )
    return {r.service_id: r.uses_canary_analysis for r in Release.objects.filter(pk__in=latest)}


# what load() and the rules read: changes to these refresh cached catalog rows (squads.cache)
CATALOG_INPUTS = {
    "pipelines.PipelineConfig": None,
    "pipelines.PipelineRun": {"service", "status", "ref", "spec"},
    "pipelines.Environment": {"production"},
    "pipelines.Release": {"service", "environment", "strategy"},
}

RULES = [
    Rule(
        "has_pipeline",
        "Has a pipeline",
        "bronze",
        lambda s, ctx: s.pk in ctx["pipelines"]["has_pipeline"],
        help="A backline.yml in the repository (seen by a run) or a spec stored in the portal.",
    ),
    Rule(
        "default_branch_green",
        "Last pipeline run on the default branch succeeded",
        "silver",
        lambda s, ctx: ctx["pipelines"]["default_status"].get(s.pk) == RunStatus.SUCCEEDED,
        help="The most recent finished run on the default branch succeeded.",
    ),
    Rule(
        "production_canary",
        "Production releases use a canary with analysis",
        "gold",
        lambda s, ctx: ctx["pipelines"]["production_canary"].get(s.pk),
        help="The latest production release sent part of the traffic to a canary and ran an "
        "analysis before going further (not applicable until the service has one).",
    ),
]
