"""A filtered, paginated list page (audit log, pipeline runs, releases, workspaces).

The page's template has a ``results`` partial: an HTMX request (filters, sorting, paging in
place) gets only that partial.
"""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from portal.catalog import squad_model


def render_list(
    request: HttpRequest,
    template: str,
    flt: Any,
    *,
    per_page: int = 30,
    rows: Any = None,
    **context: Any,
) -> HttpResponse:
    """``template`` with ``filter`` (the FilterSet ``flt``), ``page`` (a page of ``rows``,
    default ``flt.qs``), ``squads`` (for the squad picker every list has; read only if the
    template shows it) and ``context``."""
    page = Paginator(flt.qs if rows is None else rows, per_page).get_page(request.GET.get("page"))
    name = f"{template}#results" if getattr(request, "htmx", False) else template
    squads = squad_model().objects.only("slug", "name")
    return render(request, name, {"filter": flt, "page": page, "squads": squads, **context})
