"""The import's ownership rules, the same as the API's, checked before anything is parsed or
written:

- ``may_import(actor)``: before any parsing work (YAML, schemas, placeholders), the actor must
  hold ``catalog:write`` for at least one squad (or be an org admin): a viewer's 10 MB of YAML
  is refused at once, not after it has been read.
- ``structure_changes(plan)``: a team's place in the organisation (its tribe and its parent
  team) is not the squad's to change: the API offers no such field, and through an import only
  an org admin may move a team (``spec.parent``/``spec.children`` naming another tribe or team).
  Memberships of other squads need ``catalog:write`` there (``check_permissions``), so a squad
  cannot join a person to, or itself under, another squad.
"""

from django.core.exceptions import PermissionDenied

MOVED_FIELDS = {"tribe": "its tribe", "parent": "its parent team"}


def may_import(actor) -> None:
    if actor is None or actor.is_admin:
        return
    if not any(actor.can("catalog:write", sid) for sid in actor.squad_ids()):
        raise PermissionDenied(
            "Importing needs catalog:write for at least one squad (or an org admin): "
            "nothing was read."
        )


def structure_changes(plan) -> dict[str, str]:
    """{squad slug: what of its place would change} for the squads the import updates."""
    out = {}
    for slug, (want, have) in plan["squad"]["update"].items():
        moved = [
            f"{label} ({have.get(field) or 'none'} → {want.get(field) or 'none'})"
            for field, label in MOVED_FIELDS.items()
            if want.get(field) != have.get(field)
        ]
        if moved:
            out[slug] = " and ".join(moved)
    return out
