"""The catalog cache: the catalog's result rows (HTML fragment and API page) cached under one
generation, bumped whenever anything a row shows or a scorecard rule reads changes.

What a row depends on is declared next to the code that reads it: ``CATALOG_INPUTS`` here for
the catalog's own models, and ``CATALOG_INPUTS`` in each ``<app>/scorecard.py`` (models and the
fields its ``load()``/rules read). ``connect()`` watches them all (``portal.cachegen.watch``).
``CATALOG_CACHE_SECONDS`` (0 turns the cache off) bounds staleness for writes made outside the
ORM; code that writes catalog rows with COPY calls ``CATALOG.bump()`` itself.
"""

from django.apps import apps

from portal.cachegen import Generation, watch

CATALOG = Generation("catalog", "CATALOG_CACHE_SECONDS")

# model label -> fields that matter (None: all of them)
CATALOG_INPUTS = {
    "squads.Tribe": None,
    "squads.Squad": None,
    "squads.Membership": None,  # leads (scorecard)
    "squads.System": None,
    "squads.Tag": None,
    "squads.Service": None,  # incl. its tags
    "squads.Dependency": None,  # deprecated dependencies (scorecard)
    # the catalog's "Last run" column (pipelines.catalog.last_runs)
    "pipelines.PipelineRun": {"service", "number", "status", "ref", "commit_sha"},
}


def inputs():
    from squads import scorecards

    found = dict(CATALOG_INPUTS)
    for mod in scorecards._extra_modules():
        for label, fields in getattr(mod, "CATALOG_INPUTS", {}).items():
            have = found.get(label, set())
            found[label] = None if have is None or fields is None else {*have, *fields}
    return found


def connect():
    for label, fields in inputs().items():
        watch(apps.get_model(label), CATALOG, fields)
