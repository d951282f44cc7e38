"""The catalog page: the filtered, sorted, paged service list (cached per catalog change)."""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Page, Paginator
from django.db import connection
from django.db.models import Exists, OuterRef
from django.db.models.expressions import RawSQL
from django.http import HttpResponse
from django.shortcuts import render
from django.template.loader import get_template
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from portal.leanpath import prepared_rows
from portal.registry import registry
from squads import rowhtml
from squads.cache import CATALOG, CHOICES
from squads.filters import PARAMS, ServiceViewFilter
from squads.models import (
    STORED_TOTAL_SQL,
    Lifecycle,
    Service,
    ServiceView,
    Squad,
    System,
    Tag,
    Tribe,
)
from squads.rowhtml import escape

PAGE_SIZE = 25


# A dropdown lists at most this many choices; a bigger catalog gets a text field instead (a
# 10,000-option <select> is neither usable nor cheap to render).
FILTER_SELECT_MAX = 300


def _filter_field(name, choices, selected, empty_label, html_id=""):
    """The HTML of one catalog filter: a <select> of ``choices`` ((value, label) pairs, one
    query, at most FILTER_SELECT_MAX + 1 rows fetched), or a text input when there are more
    (or ``choices`` is None: more, not fetched)."""
    choices = None if choices is None else list(choices[: FILTER_SELECT_MAX + 1])
    id_attr = format_html(' id="{}"', html_id) if html_id else ""
    if choices is None or len(choices) > FILTER_SELECT_MAX:
        return format_html(
            '<input type="search" name="{}"{} value="{}" placeholder="{} (slug)" style="width:140px">',
            name,
            id_attr,
            selected or "",
            empty_label.lower(),
        )
    options = mark_safe(  # noqa: S308 - every value and label escaped
        "".join(
            f'<option value="{escape(v)}"{" selected" if v == selected else ""}>'
            f"{escape(label)}</option>"
            for v, label in choices
        )
    )
    return format_html(
        '<select name="{}"{}><option value="">{}</option>{}</select>',
        name,
        id_attr,
        empty_label,
        options,
    )


# every filter's choices in one query (PostgreSQL): (kind, position, value, label) rows. A kind
# of COUNTED (usually many at scale) is counted first, up to FILTER_SELECT_MAX + 1 (no sort):
# with that many it returns one marker row (position 0) instead of its sorted rows, and its
# filter is a text field (tribes too: 1,000 of them at 100,000 services were fetched sorted,
# 2 ms, to learn they were too many). The types (usually few) are fetched sorted, at most
# FILTER_SELECT_MAX + 1 rows.
COUNTED = ("owner", "tribe", "system", "tag")
CHOICE_KINDS = {
    "owner": ("slug, name", "squads_squad", "TRUE", "name"),
    "tribe": (
        "slug, name",
        "squads_tribe tr",
        "EXISTS (SELECT 1 FROM squads_squad q WHERE q.tribe_id = tr.id)",
        "name",
    ),
    "system": ("slug, name", "squads_system", "TRUE", "name"),
    "type": ("type, type", "t", "type IS NOT NULL", "type"),
    "tag": (
        "name, name",
        "squads_tag tg",
        "EXISTS (SELECT 1 FROM squads_service_tags st WHERE st.tag_id = tg.id)",
        "name",
    ),
}
TYPES_CTE = """
WITH RECURSIVE t(type) AS (
    (SELECT type FROM squads_serviceview ORDER BY type LIMIT 1)
    UNION ALL
    SELECT (SELECT s.type FROM squads_serviceview s WHERE s.type > t.type ORDER BY s.type LIMIT 1)
    FROM t WHERE t.type IS NOT NULL
)"""


def _choices_sql():
    counts = ", ".join(
        f"(SELECT count(*) FROM (SELECT 1 FROM {table} WHERE {where} LIMIT %(n)s) x) AS {kind}"
        for kind, (_cols, table, where, _order) in CHOICE_KINDS.items()
        if kind in COUNTED
    )
    over = ", ".join(f"('{kind}', n.{kind})" for kind in COUNTED)
    parts = [
        f"(SELECT k, 0, NULL, NULL FROM n, LATERAL (VALUES {over}) v(k, c) WHERE c >= %(n)s)",
        *(
            f"(SELECT '{kind}', row_number() OVER (ORDER BY {order}), {cols} FROM {table}\n"
            f"  WHERE {where}"
            + (f" AND (SELECT n.{kind} < %(n)s FROM n)" if kind in COUNTED else "")
            + f" ORDER BY {order} LIMIT %(n)s)"
            for kind, (cols, table, where, order) in CHOICE_KINDS.items()
        ),
    ]
    return f"{TYPES_CTE}, n AS (SELECT {counts})\n" + "\nUNION ALL\n".join(parts)


CHOICES_SQL = _choices_sql()


def _filter_choices():
    """(value, label) pairs of every catalog filter (None for a filter with more than
    FILTER_SELECT_MAX: a text field): one query on PostgreSQL (a recursive query hops along
    the read form's ``type`` index for the types: ``squads_service`` has none since migration
    0011, and a scan of it took 20 of the catalog page's 30 ms uncached; a kind over the limit
    is counted up to it, not sorted and fetched)."""
    limit = FILTER_SELECT_MAX + 1
    if connection.vendor != "postgresql":
        return _filter_choices_each(limit)
    found = {k: [] for k in CHOICE_KINDS}
    rows = prepared_rows(CHOICES_SQL, {"n": limit})  # planned once per connection
    for kind, pos, value, label in sorted(rows, key=lambda r: (r[0], r[1])):
        if pos == 0:
            found[kind] = None
        else:
            found[kind].append((value, label))
    return found


def _filter_choices_each(limit):
    return {
        "owner": list(Squad.objects.order_by("name").values_list("slug", "name")[:limit]),
        "tribe": list(
            Tribe.objects.filter(Exists(Squad.objects.filter(tribe=OuterRef("pk"))))
            .order_by("name")
            .values_list("slug", "name")[:limit]
        ),
        "system": list(System.objects.order_by("name").values_list("slug", "name")[:limit]),
        "type": list(
            Service.objects.order_by("type").values_list("type", "type").distinct()[:limit]
        ),
        "tag": list(
            Tag.objects.filter(Exists(Service.tags.through.objects.filter(tag_id=OuterRef("pk"))))
            .order_by("name")
            .values_list("name", "name")[:limit]
        ),
    }


SORTS = {
    "name": "name",
    "-name": "-name",
    "owner": "owner_slug",
    "-owner": "-owner_slug",
    "tier": "tier",
    "-tier": "-tier",
    "lifecycle": "lifecycle",
    "-lifecycle": "-lifecycle",
    "updated": "-updated_at",
}


def _card_cell(card):
    """The scorecard cell of ``card``: (level, passed, applicable, percent) or None."""
    if card is None:
        return ""
    level, passed, applicable, percent = card
    level = level or "none"
    return (
        f'<span class="badge badge-{escape(level)}" title="{escape(passed)} of '
        f'{escape(applicable)} checks pass">{escape(level.title())}</span> '
        f'<span class="muted small">{escape(percent)}%</span>'
    )


def _card_of(scorecard):
    """A stored scorecard's cell fields, as ``PAGE_SQL`` selects them (None: no scorecard)."""
    if not scorecard:
        return None
    return tuple(scorecard.get(k) for k in ("level", "passed", "applicable", "percent"))


def _run_cell(status):
    if status is None:
        return '<span class="muted small">no runs</span>'
    return f'<span class="badge badge-{escape(status)}">{escape(status)}</span>'


def _row_html(row, runs):
    """One catalog row: its stored parts (``squads.rowhtml``) around the scorecard and
    last-run cells (a template loop over 25 rows resolved some 800 variables per page: the
    larger part of a page's cost)."""
    run = f"<td>{_run_cell(runs.get(row['service_id']))}</td>" if runs is not None else ""
    return (
        f"{row['html_head']}      <td>{_card_cell(row['card'])}</td>\n"
        f"      {run}\n{row['html_tail']}"
    )


def _unstitched_parts(found):
    """The row parts of read forms stitched before ``html_head`` existed, built from their
    stored list rows (one query, none when every row has its parts)."""
    missing = [r["service_id"] for r in found if not r["html_head"]]
    if not missing:
        return
    names = ("row", "owner_name", "tribe_name", "system_name")
    parts = {
        r["service_id"]: r
        for r in ServiceView.objects.filter(pk__in=missing).values("service_id", *names)
    }
    for r in found:
        p = parts.get(r["service_id"])
        if not r["html_head"] and p is not None:
            r["html_head"] = rowhtml.head(p["row"], *(p[n] for n in names[1:]))
            r["html_tail"] = rowhtml.tail(p["row"])


# the unfiltered page in name order (PostgreSQL): its rows, their scorecard cells' fields (not
# the whole stored scorecard, decoded per row) and the stored total, in one statement prepared
# once per connection (planned per request, as the ORM's are, it cost more than it ran). The
# fields are read past the OFFSET (the rows skipped are not decompressed), each scorecard once.
PAGE_SQL = f"""
SELECT p.service_id, p.html_head, p.html_tail,
       CASE WHEN p.scorecard <> '{{}}'::jsonb THEN
         ARRAY[c.level, c.passed, c.applicable, c.percent] END,
       {STORED_TOTAL_SQL}
FROM (SELECT service_id, name, html_head, html_tail, scorecard FROM squads_serviceview
      ORDER BY name LIMIT {PAGE_SIZE} OFFSET %(offset)s) p
LEFT JOIN LATERAL jsonb_to_record(p.scorecard)
  AS c(level text, passed text, applicable text, percent text) ON TRUE
ORDER BY p.name
"""
PAGE_KEYS = ("service_id", "html_head", "html_tail", "card", "total")


def _page_rows(rows, bottom, filtered, lean):
    """The page's rows from ``bottom`` as dicts (``PAGE_KEYS``), each with the count of all of
    them: ``PAGE_SQL`` when ``lean`` (the unfiltered name order on PostgreSQL), otherwise
    ``rows`` with the count as an uncorrelated subquery (computed once; unfiltered on
    PostgreSQL, the stored total)."""
    if lean:
        found = prepared_rows(PAGE_SQL, {"offset": bottom})
        return [dict(zip(PAGE_KEYS, r, strict=True)) for r in found]
    if not filtered and connection.vendor == "postgresql":
        total = RawSQL(STORED_TOTAL_SQL, [])  # noqa: S611 - a constant
    else:
        sql, params = rows.order_by().values("pk").query.sql_with_params()
        total = RawSQL(f"SELECT COUNT(*) FROM ({sql}) c", params)  # noqa: S611 - compiled ORM SQL
    return _with_cards(list(rows.annotate(total=total)[bottom : bottom + PAGE_SIZE]))


def _with_cards(found):
    """ORM rows with their stored scorecard replaced by its cell fields (``_card_of``)."""
    for r in found:
        r["card"] = _card_of(r.pop("scorecard"))
    return found


def _page(rows, number, filtered=True, lean=False):
    """``Paginator(rows, PAGE_SIZE).get_page(number)`` and its rows, in one query when the page
    is in range (``_page_rows``; unfiltered, the count is the stored total: a count of every
    row reads the whole table, more of it the more rows writes left dead since the last
    vacuum; ``lean``: the unfiltered name order, one prepared statement). A malformed or
    out-of-range number, or no rows, takes the paginator's own path."""
    paginator = Paginator(rows, PAGE_SIZE)
    try:
        n = int(number or 1)
    except (TypeError, ValueError):
        n = 0
    if n >= 1:
        found = _page_rows(rows, (n - 1) * PAGE_SIZE, filtered, lean)
        if found:
            paginator.count = found[0]["total"]  # the cached_property, known
            return Page(found, paginator.validate_number(n), paginator), found
    page = paginator.get_page(number)
    return page, _with_cards(list(page.object_list))


def _service_results(request):
    """The HTML of the catalog's result table and pager for this query string: a page of the
    stitched read form (its list row, stored scorecard and the owner's, tribe's and system's
    names, and the count: one indexed query) and the other apps' columns (one query each)."""
    qs = ServiceView.objects.all()
    filtered = any(request.GET.get(k) for k in PARAMS)  # none given (or all empty): all rows
    if filtered:
        qs = ServiceViewFilter(request.GET, queryset=qs).qs
    sort = request.GET.get("sort", "")
    if sort in SORTS:
        qs = qs.order_by(SORTS[sort], "name")
    elif not (request.GET.get("q") or request.GET.get("search")):
        qs = qs.order_by("name")
    rows = qs.values("service_id", "html_head", "html_tail", "scorecard")
    lean = not filtered and sort not in SORTS and connection.vendor == "postgresql"
    page, found = _page(rows, request.GET.get("page"), filtered, lean)
    _unstitched_parts(found)
    extra = {c.key: c.load([r["service_id"] for r in found]) for c in registry.catalog_columns}
    runs = extra.get("last_runs")
    rows = "".join(_row_html(r, runs) for r in found)
    ctx = {
        "page": page,
        "rows_html": mark_safe(rows),  # noqa: S308 - every value escaped (_row_html)
        "has_runs": "last_runs" in extra,
        "pager_target": "#results",
        "request": request,
    }
    # without the request: the fragment reads only these (the context processors ran for the page)
    return get_template("squads/_service_results.html").render(ctx)


@login_required
def service_list(request):
    """The catalog. Result rows are cached until a catalog input changes, the filters' choices
    until one of theirs does (squads/cache.py): rendered once per change, not per visit."""
    results = CATALOG.cached(
        ("html-results", request.path, request.GET.urlencode()),
        lambda: _service_results(request),
    )
    if request.htmx and not request.htmx.boosted:
        return HttpResponse(results)
    choices = CHOICES.cached(("filter-choices",), _filter_choices)
    get = request.GET.get
    ctx = {
        "results": mark_safe(results),  # noqa: S308 - rendered by our template (autoescaped)
        "sort": get("sort", ""),
        "lifecycles": Lifecycle.choices,
        "filter_fields": {
            "owner": _filter_field(
                "owner", choices["owner"], get("owner"), "All squads", html_id="f-owner"
            ),
            "tribe": _filter_field("tribe", choices["tribe"], get("tribe"), "All tribes"),
            "system": _filter_field("system", choices["system"], get("system"), "All systems"),
            "type": _filter_field("type", choices["type"], get("type"), "Any"),
            "tag": _filter_field("tag", choices["tag"], get("tag"), "Any"),
        },
    }
    return render(request, "squads/service_list.html", ctx)


service_list.nav_section = "catalog"
