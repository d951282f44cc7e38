"""Backstage interop: import descriptor files, export the catalog, registered locations.

Public entry points (one operation, many doors: UI, API, command, beat):

- ``import_catalog(sources, actor, *, dry_run=False) -> ImportReport`` (raises ``ImportFailed``
  with ``.errors`` [``ImportIssue``: file, document, entity, field, message] or
  ``PermissionDenied``; nothing is written then)
- ``load_sources(paths_or_urls) -> list[(name, text)]`` (``Source`` tuples that remember their
  origin, so Location targets and ``$text`` placeholders are followed; plain tuples, e.g.
  uploads, never make the server read its disk or the network)
- ``export_catalog() -> str``
- ``register_location(target, actor) -> Location`` (admins; validated by a dry run),
  ``refresh_location(location, actor=None)``, ``refresh_all_locations(actor=None)``
- ``generate.generate_catalog(total) -> str`` (big valid catalogs for benchmarks)

Mapping (slugs are ``metadata.name`` lower-cased: Backstage compares refs case-insensitively;
another namespace ``ns`` gives the slug ``ns--name``; messages name entities by ref):

- Every entity is validated against Backstage's JSON Schemas (``schema/``, ``schema.py``).
- Group ``type: team`` → Squad; any other type → Tribe (``kind`` = the type). ``parent`` /
  ``children`` kept: squad.parent = parent team, squad.tribe = nearest tribe above,
  tribe.parent = nearest tribe above. ``spec.members`` adds memberships.
  Annotations ``backline.io/chat-channel`` and ``backline.io/oncall`` → chat channel, on-call.
- User → Person; ``memberOf`` → memberships (teams only). Roles: annotations
  ``backline.io/lead-of`` / ``backline.io/product-owner-of`` (comma-separated teams).
- Component → Service, System, Domain, API, Resource as before; any lifecycle string
  (``lifecycle`` = experimental | production | deprecated via ``models.map_lifecycle``,
  ``lifecycle_raw`` = the word as written); ``$text`` / ``$json`` / ``$yaml`` / ``$openapi`` /
  ``$asyncapi`` definitions read at import (``definitions.py``).
- Owners: any Group or User. Backline's owner FK (permissions) is the team, a User's first
  team, or none (a non-team Group owns systems and domains as ``owner_tribe``).
- Each row keeps its descriptor (``backstage_entity``) and Backline's rendering right after the
  import (``backstage_seen``); the export overlays only what changed since (``render.py``).
- Other kinds (Template, Environment, AiResource, custom) → ``ForeignEntity``, exported as
  written. Location entities are followed, not stored.
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
