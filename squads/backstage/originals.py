"""Each imported row keeps its descriptor (``backstage_entity``) and Backline's own rendering of
the row right after the import (``backstage_seen``): the export is the descriptor with only the
differences between that rendering and today's written over it."""

from .exporter import group_children
from .foreign import document
from .foreign import dumps as _dumps
from .render import render


def _group_parents(imp):
    """{group slug: parent group slug} over the database and this import."""
    parents = {}
    for slug, t in imp.db_tribes.items():
        parents[slug] = imp.tribe_by_id.get(t.parent_id)
    for slug, s in imp.db_squads.items():
        parents[slug] = imp.squad_by_id.get(s.parent_id) or imp.tribe_by_id.get(s.tribe_id)
    for slug, want in imp.tribe_desired.items():
        parents[slug] = want["parent"]
    for slug, want in imp.squad_desired.items():
        parents[slug] = want["parent"] or want["tribe"]
    return parents


def attach(imp):
    """Add ``backstage_entity`` and ``backstage_seen`` to every desired row."""
    children = group_children(_group_parents(imp))
    for kind, desired, table in (
        ("tribe", imp.tribe_desired, "group"),
        ("squad", imp.squad_desired, "group"),
        ("person", imp.person_desired, "user"),
        ("domain", imp.domain_desired, "domain"),
        ("system", imp.system_desired, "system"),
        ("api", imp.api_desired, "api"),
        ("resource", imp.resource_desired, "resource"),
        ("component", imp.service_desired, "component"),
    ):
        for slug, want in desired.items():
            e = imp.entities[table].get(slug)
            if e is None:  # a person only named by a Group's spec.members: keep what it has
                obj = imp.db_person(slug)
                want["backstage_entity"] = obj.backstage_entity
                want["backstage_seen"] = obj.backstage_seen
                continue
            original = document(e)
            seen = _dumps(render(kind, slug, want, children))
            if original == seen:  # Backline's own rendering (an export): nothing to keep
                original = seen = ""
            want["backstage_entity"] = original
            want["backstage_seen"] = seen
