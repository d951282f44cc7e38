"""The catalog cache: the catalog's result rows (HTML fragment and API page) cached under one
generation, bumped whenever anything a row shows or a scorecard rule reads changes.

What a row depends on is declared next to the code that reads it: ``CATALOG_INPUTS`` here for
the catalog's own models (``connect()``), and the ``inputs`` of each scorecard source and
catalog column other apps register (``squads.scorecards.register``,
``squads.cache.register_column``), watched as they register (``portal.cachegen.watch``).
``CATALOG_CACHE_SECONDS`` (0 turns the cache off) bounds staleness for writes made outside the
ORM; code that writes catalog rows with COPY calls ``CATALOG.bump()`` itself.
"""

from django.apps import apps

from portal.cachegen import Generation, unwatch, watch
from portal.registry import CatalogColumn, registry
from portal.registry import catalog_column as _register_column

# The catalog filters' choices (squads, tribes, systems, types, tags) change with far fewer
# writes than the rows: a service's description or scorecard edit leaves them as they are.
CHOICES = Generation("catalog-choices", "CATALOG_CACHE_SECONDS")
CHOICES_INPUTS = {
    "squads.Squad": {"slug", "name", "tribe"},
    "squads.Tribe": {"slug", "name"},
    "squads.System": {"slug", "name"},
    "squads.Tag": {"name"},
    "squads.Service": {"type", "tags"},  # a tag is offered while a service carries it
}
CATALOG = Generation("catalog", "CATALOG_CACHE_SECONDS", covers=(CHOICES,))
_watched: set[str] = set()

# model label -> fields that matter (None: all of them)
CATALOG_INPUTS = {
    "squads.Tribe": None,
    "squads.Squad": None,
    "squads.Membership": None,  # leads (scorecard)
    "squads.System": None,
    "squads.Tag": None,
    "squads.Service": None,  # incl. its tags
    "squads.Dependency": None,  # deprecated dependencies (scorecard)
}


def inputs():
    """Every model label the catalog rows depend on -> fields (None: all of them)."""
    found = dict(CATALOG_INPUTS)
    sources = [*registry.scorecards, *registry.catalog_columns]
    for label, fields in ((k, v) for src in sources for k, v in src.inputs.items()):
        have = found.get(label, set())
        found[label] = None if have is None or fields is None else {*have, *fields}
    return found


def watch_inputs(labels) -> None:
    """(Re)watch these models with every field registered for them so far: one receiver per
    model, so two sources reading one model merge their fields."""
    merged = inputs()
    for label in labels:
        model = apps.get_model(label)
        if label in _watched:
            unwatch(model, CATALOG)
        _watched.add(label)
        watch(model, CATALOG, merged[label])


def register_column(column: CatalogColumn) -> None:
    """A per-service column of the catalog list (from another app's ``AppConfig.ready()``):
    loaded with each page, so its inputs refresh the cache only (no read form holds it)."""
    _register_column(column)
    watch_inputs(column.inputs)


def connect():
    watch_inputs(CATALOG_INPUTS)
    for label, fields in CHOICES_INPUTS.items():
        watch(apps.get_model(label), CHOICES, fields)
