"""Facts for the catalog list: each service's last pipeline run, in one query."""

from django.db import connection
from django.db.models import Max

from pipelines.models import PipelineRun
from portal.leanpath import prepared_rows
from portal.lookups import many


def latest_ids(service_ids=None):
    qs = PipelineRun.objects.all()
    if service_ids is not None:
        qs = qs.filter(service_id__any=many(service_ids))
    return qs.order_by().values("service_id").annotate(m=Max("id")).values("m")


# each service's run with the highest id, as ``latest_ids`` picks it (PostgreSQL: one index
# probe per service along (service, -id), a statement prepared once per connection: planned
# per request, the catalog page's statements cost more to plan than to run)
LAST_STATUS_SQL = """
SELECT s.id, (SELECT r.status FROM pipelines_pipelinerun r WHERE r.service_id = s.id
              ORDER BY r.id DESC LIMIT 1)
FROM unnest(%(ids)s::bigint[]) AS s(id)
"""


def last_runs(service_ids) -> dict:
    """{service_id: status} of each service's most recent run (one SQL query; a service
    without runs is absent)."""
    ids = list(service_ids)
    if not ids:
        return {}
    if connection.vendor == "postgresql":
        rows = prepared_rows(LAST_STATUS_SQL, {"ids": ids})
    else:
        rows = PipelineRun.objects.filter(pk__in=latest_ids(ids)).values_list(
            "service_id", "status"
        )
    return {service_id: status for service_id, status in rows if status is not None}


# what last_runs() reads: changes to these refresh cached catalog rows (squads.cache)
CATALOG_INPUTS = {"pipelines.PipelineRun": {"service", "number", "status", "ref", "commit_sha"}}
