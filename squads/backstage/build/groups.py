"""Groups: a ``team`` is a squad, any other type a tribe; the tree of parents and children over
the import and the database."""

from portal.limits import DESCRIPTION_MAX

from ..constants import ANN_CHAT, ANN_ONCALL, TEAM_TYPES
from ..refs import ref_of_slug
from ..validate import _annotations, _links, _text
from .profile import display_name, email_and_picture, profile_of


class GroupBuilder:
    """Mixin of ``EntityBuilder``."""

    def _classify_groups(self, groups):
        """``group_kind``: slug → 'squad' | 'tribe' (and ``e.gtype``, the type as written)."""
        self.group_kind = {}
        for slug, e in groups.items():
            self._classify_group(slug, e)

    def _classify_group(self, slug, e):
        ctx = self.ctx
        gtype = _text(ctx, e, e.spec, "type", "spec.type", max_len=50)
        if not gtype:
            ctx.error(e.doc, e, "spec.type", "is required (team, tribe, business-unit, ...)")
            gtype = "team"
        e.gtype = gtype
        self.group_kind[slug] = "squad" if gtype in TEAM_TYPES else "tribe"
        # a row keeps its table: a tribe cannot become a team, nor a team a tribe
        if self.group_kind[slug] == "squad":
            was, held, own, becomes = "tribe", self.db_tribes, self.db_squads, "a team"
        else:
            was, held, own, becomes = "team", self.db_squads, self.db_tribes, f"a {gtype}"
        if slug in held and slug not in own:
            ctx.error(
                e.doc,
                e,
                "spec.type",
                f"{ref_of_slug('group', slug)} exists as a {was}; it cannot become {becomes}",
            )

    def _link_groups(self, groups):
        """``group_parent``: slug → parent slug, from ``spec.parent`` and ``spec.children``."""
        parent = {}
        for slug, e in groups.items():
            if e.spec.get("parent") is not None:
                _, p = self._resolve(e, "spec.parent", e.spec["parent"], "group")
                if p == slug:
                    self.ctx.error(e.doc, e, "spec.parent", "a group cannot be its own parent")
                elif p:
                    parent[slug] = p
        claimed_by = {}
        for slug, e in groups.items():
            self._claim_children(slug, e, parent, claimed_by)
        self.group_parent = parent

    def _claim_children(self, slug, e, parent, claimed_by):
        ctx = self.ctx
        children = e.spec.get("children") or []
        if not isinstance(children, list):
            ctx.error(e.doc, e, "spec.children", "must be a list of group references")
            return
        for i, value in enumerate(children):
            path = f"spec.children[{i}]"
            _, child = self._resolve(e, path, value, "group")
            if not child:
                continue
            if child not in self.entities["group"]:
                if self._db_group_parent(child) != slug:
                    ctx.warn(
                        e.doc,
                        e,
                        f"{path}: {ref_of_slug('group', child)} is not in this import; its "
                        "parent is left as it is",
                    )
            elif parent.get(child, slug) != slug:
                ctx.error(
                    e.doc,
                    e,
                    path,
                    f"{ref_of_slug('group', child)} names "
                    f"{ref_of_slug('group', parent[child])} as its parent, not {e.ref}",
                )
            elif claimed_by.get(child, slug) != slug:
                ctx.error(
                    e.doc,
                    e,
                    path,
                    f"{ref_of_slug('group', child)} is also a child of "
                    f"{ref_of_slug('group', claimed_by[child])}",
                )
            else:
                claimed_by[child] = slug
                parent.setdefault(child, slug)

    def _squad_tribe(self, squad):
        """The tribe a squad sits in (a squad-owned system or domain also belongs to it)."""
        if not squad:
            return None
        if squad in self.squad_desired:
            return self.squad_desired[squad]["tribe"]
        s = self.db_squads.get(squad)
        return self.tribe_by_id.get(s.tribe_id) if s else None

    def _db_group_parent(self, slug):
        if slug in self.db_squads:
            s = self.db_squads[slug]
            if s.parent_id:
                return self.squad_by_id[s.parent_id]
            return self.tribe_by_id.get(s.tribe_id)
        if slug in self.db_tribes:
            return self.tribe_by_id.get(self.db_tribes[slug].parent_id)
        return None

    def _parent_of(self, slug):
        if slug in self.entities["group"]:
            return self.group_parent.get(slug)
        return self._db_group_parent(slug)

    def _ancestors(self, e):
        """Walk up from a group; returns the chain of ancestor slugs, or None on a cycle."""
        chain, seen = [], {e.slug}
        p = self._parent_of(e.slug)
        while p:
            if p in seen:
                self.ctx.error(
                    e.doc,
                    e,
                    "spec.parent",
                    f"the parent chain loops back through {ref_of_slug('group', p)}",
                )
                return None
            seen.add(p)
            chain.append(p)
            p = self._parent_of(p)
        return chain

    def _build_group(self, e):
        ctx = self.ctx
        profile = profile_of(ctx, e)
        name = display_name(ctx, e, profile, e.slug)
        description = _text(
            ctx, e, e.metadata, "description", "metadata.description", max_len=DESCRIPTION_MAX
        )
        email, picture = email_and_picture(ctx, e, profile)
        links = _links(ctx, e)
        ann = _annotations(ctx, e)
        chain = self._ancestors(e) or []
        nearest_tribe = next((a for a in chain if self.group_type(a) == "tribe"), None)
        direct = chain[0] if chain else None
        contact = {"email": email, "picture": picture, "links": links}
        if self.group_kind[e.slug] == "tribe":
            if direct and self.group_type(direct) == "squad":
                ctx.warn(
                    e.doc,
                    e,
                    f"spec.parent: {ref_of_slug('group', direct)} is a team; the tribe is placed "
                    f"under the nearest tribe above it ({nearest_tribe or 'none'})",
                )
            self.tribe_desired[e.slug] = {
                "name": name,
                "description": description,
                "kind": e.gtype,
                "parent": nearest_tribe,
                **contact,
            }
        else:
            self.squad_desired[e.slug] = {
                "name": name,
                "mission": description,
                "tribe": nearest_tribe,
                "parent": direct if direct and self.group_type(direct) == "squad" else None,
                "chat_channel": ann.get(ANN_CHAT, "")[:200],
                "oncall_contact": ann.get(ANN_ONCALL, "")[:200],
                **contact,
            }
