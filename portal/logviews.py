"""The HTML side of every job log endpoint: the live tail fragment that HTMX polls.

The fragment carries the same answer as the API (``portal.joblog.page``) in the poller's
``data-offset``, ``data-next-offset`` and ``data-complete`` attributes (partial
``partials/log_poller_attrs.html``) and answers HTMX with 286 once complete, so it stops
polling.
"""

from django.http import HttpResponse
from django.shortcuts import render

from portal.params import log_offset

LOG_PAGE_BYTES = 512 * 1024  # the most a single tail response carries


def tail(request, template: str, context: dict, read_page) -> HttpResponse:
    """Render ``template`` with ``log`` = ``read_page(offset)`` (and ``context``); 400 on a
    bad ``?offset=``; 286 to HTMX when the log is complete."""
    try:
        offset = log_offset(request.GET.get("offset"))
    except ValueError as exc:
        return HttpResponse(str(exc), status=400)
    log = read_page(offset)
    response = render(request, template, {**context, "log": log})
    if log["complete"] and request.htmx:
        response.status_code = 286
    return response
