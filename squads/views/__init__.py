"""The catalog's HTML pages (``squads/urls.py`` routes to the names below)."""

from squads.views.catalog import service_list
from squads.views.org import (
    api_detail,
    my_squads,
    squad_detail,
    squad_list,
    system_detail,
    tribe_detail,
)
from squads.views.service import service_detail, service_edit
from squads.views.transfer import catalog_export, catalog_import

__all__ = [
    "api_detail",
    "catalog_export",
    "catalog_import",
    "my_squads",
    "service_detail",
    "service_edit",
    "service_list",
    "squad_detail",
    "squad_list",
    "system_detail",
    "tribe_detail",
]
