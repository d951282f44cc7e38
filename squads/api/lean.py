"""The catalog's lean reads (``portal.leanpath``): a service's detail, the service list and its
facets, each answered by one statement that checks the token and returns the JSON PostgreSQL
assembled from the stored documents of the read form (``ServiceView``, stitched at write
time, so never stale). They mirror ``ServiceViewSet`` exactly: the same filters
(``ServiceViewFilter``: owner/squad, tribe, system, type, lifecycle, tier, search/q), order
(name; relevance then name for a search), pagination (``StandardPagination``: page, page_size
up to 500, DRF's next/previous links) and facet counts (the facets ignore ``page`` and
``page_size``, as the view does). The count of a list with no filter or one facet-column
filter, and the unfiltered facets, are read from the counts the read form's triggers keep in
every writing transaction (``ServiceFacetCount``, PostgreSQL). Any other parameter, a value the
filters would refuse, ``ordering=``, ``tag=``, ``page=last``, a page past the end or an unknown
slug is left to the DRF view (``Declined``), which answers it (400, 404...)."""

import json
import math
import re

from django.db import connection
from rest_framework.utils.urls import remove_query_param, replace_query_param

from portal.api.pagination import StandardPagination
from portal.leanpath import Declined, authorized_answer, param
from squads.api.views import FACETS
from squads.filters import CANDIDATES_SQL, candidate_params
from squads.models import STORED_TOTAL_SQL, Lifecycle, ServiceFacetCount, ServiceView

TABLE = ServiceView._meta.db_table
# parameter -> column it must equal (a form CharField: stripped, empty means no filter)
EXACT = {
    "owner": "owner_slug",
    "squad": "owner_slug",
    "tribe": "tribe_slug",
    "system": "system_slug",
    "type": "type",
}
# parameter -> the values a choice filter accepts (as sent: a ChoiceField does not strip)
CHOICES: dict[str, dict[str, object]] = {
    "lifecycle": {v: v for v in Lifecycle.values},
    "tier": {"1": 1, "2": 2, "3": 3},
}
FILTERS = {*EXACT, *CHOICES, "search", "q"}
LIST_PARAMS = frozenset({*FILTERS, "page", "page_size"})
FACET_PARAMS = frozenset({*FILTERS, "facet", "page", "page_size"})  # the view ignores paging
DEFAULT_FACETS = ["lifecycle", "type", "tier"]
TEXT_FACETS = {c for c in FACETS.values() if c != "tier"}
_PAGING = StandardPagination


def _named(sql: str, prefix: str) -> str:
    """``sql``'s ``%s`` placeholders as ``%(prefix0)s``, ``%(prefix1)s``... in order."""
    counter = iter(range(sql.count("%s")))
    return re.sub(r"%s", lambda _m: f"%({prefix}{next(counter)})s", sql)


_CANDIDATES = _named(CANDIDATES_SQL, "c")
FACET_OF = {column: facet for facet, column in FACETS.items()}  # column -> its facet's name
COUNTS = ServiceFacetCount._meta.db_table


class Filters:
    """The list's filters: SQL conditions and their parameters, whether a search orders the
    list, and the (facet, value) of each facet-column condition (``ServiceFacetCount``)."""

    def __init__(self, request, known):
        if not set(request.GET) <= known or ("search" in request.GET and "q" in request.GET):
            raise Declined
        self.conds: list[str] = []
        self.params: dict[str, object] = {}
        self.facets: list[tuple[str, str]] = []
        given = request.GET
        for name, column in EXACT.items():
            value = param(request, name) if name in given else None
            if value:
                self._add(name, column, value, value)
        for name, accepted in CHOICES.items():
            choice = param(request, name, strip=False) if name in given else None
            if choice:
                if choice not in accepted:
                    raise Declined
                self._add(name, name, accepted[choice], choice)
        text = (param(request, "search") or param(request, "q")) if given else None
        self.searched = bool(text)
        if text:
            self.params.update({f"c{i}": v for i, v in enumerate(candidate_params(text))})
            self.conds.append(f"service_id = ANY(ARRAY({_CANDIDATES}))")

    def _add(self, name: str, column: str, value: object, text: str) -> None:
        self.conds.append(f"{column} = %(f_{name})s")
        self.params[f"f_{name}"] = value
        self.facets.append((FACET_OF[column], text))

    @property
    def where(self) -> str:
        return f" WHERE {' AND '.join(self.conds)}" if self.conds else ""

    def stored_count(self) -> tuple[str, dict[str, str]] | None:
        """The count of the filtered rows read from the counts the read form's triggers keep
        in every writing transaction (migration 0014: exact, never stale), as an SQL
        expression and its parameters: with no filter the total (``facet='*'``), with one
        facet-column condition that value's count; None for anything else (a search, two
        conditions) or a database without the triggers (it counts the rows)."""
        if self.searched or len(self.facets) > 1 or connection.vendor != "postgresql":
            return None
        facet, value = self.facets[0] if self.facets else ("*", "")
        sql = (
            f"COALESCE((SELECT n FROM {COUNTS} WHERE facet = '{facet}' "
            "AND value = %(count_value)s), 0)"
        )
        return sql, {"count_value": value}


def service_detail(request, match) -> bytes:
    """``GET /api/v1/services/<slug>/``: the stored detail document."""
    (doc,) = authorized_answer(
        request,
        [f"SELECT detail::text FROM {TABLE} WHERE slug = %(slug)s"],
        {"slug": match["slug"]},
    )
    if doc is None:
        raise Declined  # the view's 404
    return doc.encode()


def _page(request) -> tuple[int, int]:
    """(page number, page size) as ``StandardPagination`` reads them."""
    raw = request.GET.get("page") or 1
    try:
        number = int(raw)  # "last", not a number, < 1: the pagination's own answers
    except ValueError:
        raise Declined from None
    if number < 1:
        raise Declined
    size = _PAGING.page_size
    try:
        asked = int(request.GET["page_size"])
        if asked > 0:
            size = min(asked, _PAGING.max_page_size)
    except (KeyError, ValueError):
        pass
    return number, size


# A search's matches, ranked once (a bounded candidate set, read through the primary key): the
# count and the page both read them; the page's stored rows are read for its rows only.
RANKED = (
    "ranked AS MATERIALIZED (SELECT service_id, name, ts_rank_cd(document, "
    "websearch_to_tsquery('english'::regconfig, %(c0)s)) AS rank FROM {table}{where})"
)
RANKED_PAGE = (
    "array_to_string(ARRAY(SELECT v.row::text FROM (SELECT service_id, rank, name FROM ranked "
    "ORDER BY rank DESC NULLS LAST, name ASC LIMIT %(limit)s OFFSET %(offset)s) p "
    "JOIN {table} v ON v.service_id = p.service_id "
    "ORDER BY p.rank DESC NULLS LAST, p.name ASC), ',')"
)


def _list_sql(filters: Filters) -> tuple[list[str], str]:
    """(count and page columns, common table expression) of a list statement."""
    where = filters.where
    if filters.searched:
        return [
            "SELECT COUNT(*) FROM ranked",
            RANKED_PAGE.format(table=TABLE),
        ], RANKED.format(table=TABLE, where=where)
    stored = filters.stored_count()
    if stored:
        filters.params.update(stored[1])
    return [
        stored[0] if stored else f"SELECT COUNT(*) FROM {TABLE}{where}",
        # the rows are turned into text past the OFFSET: the skipped ones are not decoded
        f"array_to_string(ARRAY(SELECT p.row::text FROM (SELECT row, name FROM {TABLE}{where} "
        "ORDER BY name ASC LIMIT %(limit)s OFFSET %(offset)s) p ORDER BY p.name ASC), ',')",
    ], ""


def service_list(request, match) -> bytes:
    """``GET /api/v1/services/``: a page of stored list rows in DRF's envelope."""
    filters = Filters(request, LIST_PARAMS)
    number, size = _page(request)
    columns, cte = _list_sql(filters)
    params = {**filters.params, "limit": size, "offset": (number - 1) * size}
    count, rows = authorized_answer(request, columns, params, cte=cte)
    pages = max(1, math.ceil(count / size))
    if number > pages:
        raise Declined  # the pagination's 400
    nxt = prev = None
    if pages > 1:  # DRF's links, from the request's absolute URL
        url = request.build_absolute_uri()
        if number < pages:
            nxt = replace_query_param(url, "page", number + 1)
        if number == 2:
            prev = remove_query_param(url, "page")
        elif number > 2:
            prev = replace_query_param(url, "page", number - 1)
    links = f'"next":{_json(nxt)},"previous":{_json(prev)}'
    return f'{{"count":{count},{links},"results":[{rows}]}}'.encode()


def _json(value) -> str:
    return "null" if value is None else json.dumps(value, ensure_ascii=False)


def _facet_sql(wanted: list[str], where: str) -> str:
    cols = [FACETS[name] for name in wanted]
    flags = ", ".join(f"GROUPING({c}) AS g{i}" for i, c in enumerate(cols))
    sets = ", ".join(f"({c})" for c in cols)
    total = " AND ".join(f"g{i} = 1" for i in range(len(cols)))
    lists = []
    for i, (name, col) in enumerate(zip(wanted, cols, strict=True)):
        by = f'{col} COLLATE "C"' if col in TEXT_FACETS else col  # Python's order of values
        lists.append(
            f"'{name}', COALESCE((SELECT json_agg(json_build_object('value', {col}, 'count', n) "
            f"ORDER BY n DESC, {by}) FROM g WHERE g{i} = 0), '[]'::json)"
        )
    return (
        f"WITH f AS (SELECT {', '.join(cols)} FROM {TABLE}{where}), "
        f"g AS (SELECT {', '.join(cols)}, {flags}, COUNT(*) AS n FROM f "
        f"GROUP BY GROUPING SETS ({sets}, ())) "
        f"SELECT json_build_object('count', (SELECT n FROM g WHERE {total}), "
        f"'facets', json_build_object({', '.join(lists)}))::text"
    )


def _stored_facet_sql(wanted: list[str]) -> str:
    """The unfiltered facets from the counts the read form's triggers keep (migration 0014):
    the same JSON as ``_facet_sql`` without reading every service. Each facet's array is the
    text ``squads_facet_json`` stores (``ServiceFacetDoc``, migration 0017), re-assembled from
    that facet's counts, in order along ``squads_facet_order_idx`` (migration 0016), only after
    a write changed them: at 100,000 services the owner facet has 10,000 values, and building
    their text was most of the answer's time."""
    facets = " || ',' || ".join(f"'\"{name}\":' || squads_facet_json('{name}')" for name in wanted)
    return f"SELECT '{{\"count\":' || {STORED_TOTAL_SQL} || ',\"facets\":{{' || {facets} || '}}}}'"


def service_facets(request, match) -> bytes:
    """``GET /api/v1/services/facets/``: the counts per value of each facet asked for."""
    filters = Filters(request, FACET_PARAMS)
    wanted = request.GET.getlist("facet") or DEFAULT_FACETS
    if not set(wanted) <= set(FACETS):
        raise Declined  # the view's 400
    wanted = list(dict.fromkeys(wanted))
    stored = not filters.conds and connection.vendor == "postgresql"
    sql = _stored_facet_sql(wanted) if stored else _facet_sql(wanted, filters.where)
    (body,) = authorized_answer(request, [sql], filters.params)
    return body.encode()


def register() -> None:
    """The routes, as ``squads.api.urls``' router matches them (trailing slash optional;
    ``facets`` before a service slug)."""
    from portal import registry

    services = r"^/api/v1/services"
    registry.lean_route(rf"{services}/facets/?\Z", service_facets, "GET, HEAD, OPTIONS")
    registry.lean_route(rf"{services}/?\Z", service_list, "GET, POST, HEAD, OPTIONS")
    registry.lean_route(
        rf"{services}/(?P<slug>[-a-zA-Z0-9_.]+)/?\Z",
        service_detail,
        "GET, PUT, PATCH, DELETE, HEAD, OPTIONS",
    )
