"""Backstage interop: import descriptor files, export the catalog, registered locations.

Public entry points (one operation, many doors: UI, API, command, beat):

- ``import_catalog(sources, actor, *, dry_run=False) -> ImportReport``
- ``load_sources(paths_or_urls) -> list[(name, text)]``
- ``export_catalog() -> str``
- ``register_location(target, actor) -> Location`` / ``refresh_location(location, actor)``
"""

from .exporter import catalog_entities, export_catalog
from .importer import ImportFailed, ImportIssue, ImportReport, import_catalog
from .locations import refresh_all_locations, refresh_location, register_location
from .sources import Source, SourceError, load_sources

__all__ = [
    "ImportFailed",
    "ImportIssue",
    "ImportReport",
    "Source",
    "SourceError",
    "catalog_entities",
    "export_catalog",
    "import_catalog",
    "load_sources",
    "refresh_all_locations",
    "refresh_location",
    "register_location",
]
