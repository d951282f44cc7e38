"""Users and their memberships: ``spec.memberOf`` of a User and ``spec.members`` of a Group
(teams only), roles from the ``lead-of`` / ``product-owner-of`` annotations."""

from collections import defaultdict

from squads.models import Membership

from ..constants import ANN_LEAD_OF, ANN_PO_OF
from ..validate import _annotations, _ref_list
from .profile import display_name, email_and_picture, profile_of


class PersonBuilder:
    """Mixin of ``EntityBuilder``."""

    def _build_people(self, groups):
        """``person_desired`` (and ``person_order``, each person's teams in order) for every
        User of the import and every person of the database a Group adds as a member."""
        self.person_desired = {}
        self.person_order = {}
        members_of = self._group_members(groups)
        for slug, e in self.entities["user"].items():
            self._build_user(e, members_of.get(slug, []))
        for p_slug, squads in members_of.items():
            if p_slug not in self.entities["user"]:  # a person already in the database
                self._add_db_memberships(p_slug, squads)

    def _group_members(self, groups):
        """person slug → [squad slug] from Group spec.members."""
        members_of = defaultdict(list)
        for slug, e in groups.items():
            for i, value in enumerate(_ref_list(self.ctx, e, "spec.members")):
                _, p = self._resolve(e, f"spec.members[{i}]", value, "user")
                if p and self.group_kind[slug] == "squad":
                    members_of[p].append(slug)
        return members_of

    def _add_db_memberships(self, p_slug, squads):
        current = self.memberships_of(p_slug)
        missing = [s for s in squads if s not in current]
        if not missing:
            return
        p = self.db_person(p_slug)
        self.person_desired[p_slug] = {
            "name": p.name,
            "email": p.email,
            "picture": p.picture,
            "memberships": frozenset(
                {(s, r) for s, (_, r) in current.items()} | {(s, "member") for s in missing}
            ),
        }
        self.person_order[p_slug] = sorted(current) + missing

    def _build_user(self, e, extra_squads):
        ctx = self.ctx
        profile = profile_of(ctx, e)
        name = display_name(ctx, e, profile, e.name)
        email, picture = email_and_picture(ctx, e, profile)
        squads = self._user_squads(e, extra_squads)
        self.person_order[e.slug] = squads
        self.person_desired[e.slug] = {
            "name": name,
            "email": email,
            "picture": picture,
            "memberships": self._user_memberships(e, squads),
        }

    def _user_squads(self, e, extra_squads):
        """The teams of ``spec.memberOf`` (other groups are kept in the descriptor only), then
        those whose ``spec.members`` name the user."""
        squads = []
        for i, value in enumerate(_ref_list(self.ctx, e, "spec.memberOf")):
            _, g = self._resolve(e, f"spec.memberOf[{i}]", value, "group")
            if not g:
                continue
            gk = self.group_kind.get(g) if g in self.entities["group"] else self.group_type(g)
            if gk == "tribe":
                continue  # a department or other non-team group: kept in the descriptor only
            if g not in squads:
                squads.append(g)
        for g in extra_squads:
            if g not in squads:
                squads.append(g)
        return squads

    def _user_memberships(self, e, squads):
        """{(squad, role)}: the roles the annotations give when there are any, else the roles
        the database holds (``member`` for a new membership)."""
        ctx = self.ctx
        ann = _annotations(ctx, e)
        explicit = ANN_LEAD_OF in ann or ANN_PO_OF in ann
        roles = {}
        for key, role in (
            (ANN_PO_OF, Membership.Role.PRODUCT_OWNER),
            (ANN_LEAD_OF, Membership.Role.LEAD),
        ):
            for s in [x.strip().lower() for x in ann.get(key, "").split(",") if x.strip()]:
                if s not in squads:
                    ctx.error(
                        e.doc, e, f"metadata.annotations[{key}]", f"'{s}' is not in spec.memberOf"
                    )
                roles[s] = role.value
        current = self.memberships_of(e.slug)
        return frozenset(
            (
                s,
                roles.get(s, "member")
                if explicit
                else (current[s][1] if s in current else "member"),
            )
            for s in squads
        )
