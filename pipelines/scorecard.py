"""Scorecard rules from pipelines: has a pipeline; last run on the default branch succeeded.
(Production releases using a canary with analysis: ``releases.scorecard``.)"""

from django.db.models import F, Max, Q

from pipelines.models import (
    ACTIVE_STATUSES,
    ActionsRun,
    JenkinsBuild,
    PipelineConfig,
    PipelineRun,
    RunStatus,
)
from portal.lookups import many
from squads.scorecards import Rule, ScorecardSource


def load(service_ids) -> dict:
    ids = many(service_ids)
    with_spec = set(
        PipelineConfig.objects.filter(service_id__any=ids)
        .exclude(spec_yaml="")
        .values_list("service_id", flat=True)
    ) | set(
        PipelineRun.objects.filter(service_id__any=ids, spec__isnull=False)
        .order_by()
        .values_list("service_id", flat=True)
        .distinct()
    )
    latest_default = (
        PipelineRun.objects.filter(service_id__any=ids, ref=F("service__default_branch"))
        .filter(~Q(status__in=ACTIVE_STATUSES))
        .order_by()
        .values("service_id")
        .annotate(m=Max("id"))
        .values("m")
    )
    default_status = dict(
        PipelineRun.objects.filter(pk__in=latest_default).values_list("service_id", "status")
    )
    jenkins = _jenkins_last(ids)  # services built by Jenkins: its last finished build
    actions = _actions_last(ids)  # and by GitHub Actions: its last completed default-branch run
    for sid, status in [*jenkins.items(), *actions.items()]:
        default_status.setdefault(sid, status)
    return {
        "has_pipeline": with_spec | set(jenkins) | _with_actions(ids),
        "default_status": default_status,
    }


JENKINS_STATUS = {"success": RunStatus.SUCCEEDED, "aborted": RunStatus.CANCELED}


def _jenkins_last(ids) -> dict:
    """{service_id: status} of each service's highest-numbered finished Jenkins build."""
    rows = (
        JenkinsBuild.objects.filter(service_id__any=ids)
        .exclude(status="running")
        .order_by("service_id", "-number")
        .values_list("service_id", "status")
    )
    out: dict = {}
    for sid, status in rows:
        out.setdefault(sid, JENKINS_STATUS.get(status, RunStatus.FAILED))
    return out


ACTIONS_STATUS = {"success": RunStatus.SUCCEEDED, "cancelled": RunStatus.CANCELED}


def _with_actions(ids) -> set:
    return set(ActionsRun.objects.filter(service_id__any=ids).values_list("service_id", flat=True))


def _actions_last(ids) -> dict:
    """{service_id: status} of each service's latest completed GitHub Actions run on its
    default branch (``pipelines.github.actions``)."""
    rows = (
        ActionsRun.objects.filter(
            service_id__any=ids, status="completed", head_branch=F("service__default_branch")
        )
        .order_by("service_id", "-run_started_at", "-run_id")
        .values_list("service_id", "conclusion")
    )
    out: dict = {}
    for sid, conclusion in rows:
        out.setdefault(sid, ACTIONS_STATUS.get(conclusion, RunStatus.FAILED))
    return out


# what load() and the rules read: changes to these refresh cached catalog rows (squads.cache)
CATALOG_INPUTS = {
    "pipelines.PipelineConfig": None,
    "pipelines.PipelineRun": {"service", "status", "ref", "spec"},
    "pipelines.JenkinsBuild": None,
    "pipelines.ActionsRun": None,
}

RULES = [
    Rule(
        "has_pipeline",
        "Has a pipeline",
        "bronze",
        lambda s, ctx: s.pk in ctx["pipelines"]["has_pipeline"],
        help="A backline.yml in the repository (seen by a run), a spec stored in the portal, "
        "or builds of the service's Jenkins job, or GitHub Actions runs of its repository.",
    ),
    Rule(
        "default_branch_green",
        "Last pipeline run on the default branch succeeded",
        "silver",
        lambda s, ctx: ctx["pipelines"]["default_status"].get(s.pk) == RunStatus.SUCCEEDED,
        help="The most recent finished run on the default branch succeeded (a Backline run; "
        "else the last Jenkins build; else the last GitHub Actions run).",
    ),
]

# the runs load() can see at all: finished ones (the last on the default branch) and those with
# a spec (has a pipeline). A run queued and started without a spec is neither: its creation and
# its queued -> running move re-stitch nothing (``squads.stitch``), its finish does.
SEEN_RUNS = {"pipelines.PipelineRun": ~Q(status__in=ACTIVE_STATUSES) | Q(spec__isnull=False)}

# registered by PipelinesConfig.ready() (squads.scorecards.register)
SOURCE = ScorecardSource("pipelines", tuple(RULES), load, CATALOG_INPUTS, order=10, rows=SEEN_RUNS)
