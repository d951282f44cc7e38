"""Backline's URLs plus ``/bench/bare/?bytes=N``: the baseline of the catalog benchmark. A bare
Django view: signed-in only (session or nothing else: no app queries), rendering Backline's
page layout (``base.html``) around filler content so the page is about N bytes. Mounted only by
``tests/bench/gunicorn_settings.py``, which only the benchmark's gunicorn uses."""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.template import engines
from django.urls import include, path

TEMPLATE = engines["django"].from_string(
    '{% extends "base.html" %}{% block content %}<table>'
    "{% for r in rows %}<tr><td>{{ r.n }}</td><td>{{ r.text }}</td></tr>{% endfor %}"
    "</table>{% endblock %}"
)
ROW_BYTES = len("<tr><td>00000</td><td></td></tr>") + 60
LAYOUT_BYTES = 3000  # about what base.html adds around the content


@login_required
def bare(request):
    size = min(int(request.GET.get("bytes", 50_000)), 5_000_000)
    count = max((size - LAYOUT_BYTES) // ROW_BYTES, 1)
    rows = [{"n": f"{i:05d}", "text": "x" * 60} for i in range(count)]
    return HttpResponse(TEMPLATE.render({"rows": rows}, request))


urlpatterns = [path("bench/bare/", bare), path("", include("portal.urls"))]
