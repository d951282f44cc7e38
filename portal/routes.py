"""An app's HTML URL table, one route a line: ``<route> <view> [<url name>]``.

The URL name is the view's own unless a third column gives one. A view that the module lacks
fails when the URLconf loads (``manage.py check`` and every test load it).
"""

from types import ModuleType

from django.urls import URLPattern, path


def routes(views: ModuleType, table: str) -> list[URLPattern]:
    out = []
    for line in table.strip().splitlines():
        route, view, *name = line.split()
        out.append(path(route, getattr(views, view), name=name[0] if name else view))
    return out
