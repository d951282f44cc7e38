"""Facts for the catalog list: each service's last pipeline run, in one query."""

from django.db import connection
from django.db.models import Max

from pipelines.models import PipelineRun
from portal.lookups import many


def latest_ids(service_ids=None):
    qs = PipelineRun.objects.all()
    if service_ids is not None:
        qs = qs.filter(service_id__any=many(service_ids))
    return qs.order_by().values("service_id").annotate(m=Max("id")).values("m")


FIELDS = (
    "id",
    "service_id",
    "number",
    "status",
    "ref",
    "commit_sha",
    "requested_commit",
    "created_at",
    "started_at",
    "finished_at",
)
# each service's run with the highest id, as ``latest_ids`` picks it (PostgreSQL: written as
# SQL, the ORM's compilation of the grouped subquery was most of this column's cost per page)
LAST_RUNS_SQL = f"""
SELECT DISTINCT ON (service_id) {", ".join(FIELDS)} FROM pipelines_pipelinerun
WHERE service_id = ANY(%s) ORDER BY service_id, id DESC
"""


def last_runs(service_ids) -> dict:
    """{service_id: PipelineRun} with each service's most recent run (one SQL query)."""
    ids = list(service_ids)
    if not ids:
        return {}
    if connection.vendor == "postgresql":
        runs = PipelineRun.objects.raw(LAST_RUNS_SQL, [ids])
    else:
        runs = PipelineRun.objects.filter(pk__in=latest_ids(ids)).only(*FIELDS)
    return {r.service_id: r for r in runs}


# what last_runs() reads: changes to these refresh cached catalog rows (squads.cache)
CATALOG_INPUTS = {"pipelines.PipelineRun": {"service", "number", "status", "ref", "commit_sha"}}
