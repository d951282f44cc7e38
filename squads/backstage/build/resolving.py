"""References of one entity to others, resolved against the import and the database, and the
owner a descriptor names turned into the team Backline's permissions follow."""

from ..refs import KIND_NAMES, RefError, parse_ref, ref_of_slug, slug_for


class RefResolver:
    """Mixin of ``EntityBuilder``."""

    def _ref(self, e, path, value, default_kind, allowed):
        try:
            kind, ns, name = parse_ref(value, default_kind, e.namespace)
        except RefError as exc:
            self.ctx.error(e.doc, e, path, str(exc))
            return None, None
        if kind not in allowed:
            names = " or ".join(KIND_NAMES.get(k, k) for k in allowed)
            self.ctx.error(e.doc, e, path, f"'{value}' must refer to a {names}, not a {kind}")
            return None, None
        return kind, slug_for(ns, name)

    def group_type(self, slug):
        """'tribe' | 'squad' | None, the import's word first, then the database's."""
        e = self.entities["group"].get(slug)
        if e is not None:
            return self.group_kind[slug]
        if slug in self.db_squads:
            return "squad"
        if slug in self.db_tribes:
            return "tribe"
        return None

    def _exists(self, kind, slug):
        if kind == "group":
            return self.group_type(slug) is not None
        return slug in self.entities[kind] or slug in self.ids[kind]

    def _missing(self, e, path, kind, slug):
        self.ctx.error(e.doc, e, path, f"{ref_of_slug(kind, slug)} does not exist")

    def _resolve(self, e, path, value, default_kind, allowed=None):
        """Resolve a reference that must exist; returns (kind, slug) or (None, None)."""
        kind, slug = self._ref(e, path, value, default_kind, allowed or (default_kind,))
        if kind is None:
            return None, None
        if not self._exists(kind, slug):
            self._missing(e, path, kind, slug)
            return None, None
        return kind, slug

    def _owner_ref(self, e, value):
        """spec.owner → (kind, slug) of an existing Group or User, or (None, None). A bare name
        that is no group but a user's is the user's."""
        kind, slug = self._ref(e, "spec.owner", value, "group", ("group", "user"))
        if kind is None or self._exists(kind, slug):
            return kind, slug
        explicit_kind = isinstance(value, str) and ":" in value
        if kind == "group" and not explicit_kind and self._exists("user", slug):
            return "user", slug
        self._missing(e, "spec.owner", kind, slug)
        return None, None

    def _owner(self, e, allow_tribe):
        """spec.owner → (squad slug, tribe slug). Backstage allows any Group or User; the
        descriptor's owner is kept as written for export, Backline's permissions follow the
        owning team (a User's first team; a non-team Group owns systems and domains only)."""
        value = e.spec.get("owner")
        if value is None:
            return None, None
        kind, slug = self._owner_ref(e, value)
        if kind is None:
            return None, None
        if kind == "user":
            squads = self.person_squads(slug)
            if not squads:
                self.ctx.warn(
                    e.doc,
                    e,
                    f"spec.owner: {ref_of_slug('user', slug)} is in no team; only org admins "
                    "may change this entity in Backline",
                )
                return None, None
            return squads[0], None
        if self.group_type(slug) == "tribe":
            return (None, slug) if allow_tribe else (None, None)
        return slug, None

    def person_squads(self, slug):
        """The person's teams, in the order their descriptor lists them."""
        if slug in self.person_desired:
            return list(self.person_order[slug])
        return sorted(self.memberships_of(slug))
