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

Mapping (slugs are ``metadata.name``; another namespace ``ns`` gives the slug ``ns--name``):

- Group ``type: team`` → Squad; any other type → Tribe (``kind`` = the type). ``parent`` /
  ``children`` kept: squad.parent = parent team, squad.tribe = nearest tribe above,
  tribe.parent = nearest tribe above. ``spec.members`` adds memberships.
  Annotations ``backline.io/chat-channel`` and ``backline.io/oncall`` → chat channel, on-call.
- User → Person; ``memberOf`` → memberships (teams only). Roles: annotations
  ``backline.io/lead-of`` / ``backline.io/product-owner-of`` (comma-separated teams); without
  them existing roles are kept and new memberships are ``member``.
- Component → Service: type, lifecycle (experimental | production | deprecated), owner,
  system, dependsOn (``component:`` / ``resource:``), providesApis, consumesApis, tags, links,
  annotations; ``backline.io/tier`` (1-3), ``backline.io/runbook``, ``backline.io/oncall``,
  ``backline.io/repository``, ``backline.io/default-branch`` and ``github.com/project-slug``
  map to fields (and are written back on export).
- System (owner, domain), Domain (owner), API (type, lifecycle, owner, system, definition;
  ``$text`` relative to the file is read, remote URLs are not fetched), Resource (type, owner,
  system). A squad-owned system or domain also gets the squad's tribe as ``owner_tribe``.
- An owner that is a User stands for the user's first team; a tribe may own systems and
  domains only (elsewhere: no owner, with a warning).
- Not stored (warned or ignored): other kinds (Template, AiResource, ...), Resource dependsOn,
  subcomponentOf, subdomainOf, System type, labels.
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
