"""From entities to desired rows: references resolved against the import and the database,
every problem recorded with its field."""

from collections import defaultdict

import yaml

from squads.models import Lifecycle, Membership, map_lifecycle

from . import foreign, originals
from .constants import (
    ANN_BRANCH,
    ANN_CHAT,
    ANN_GITHUB,
    ANN_LEAD_OF,
    ANN_ONCALL,
    ANN_PO_OF,
    ANN_REPO,
    ANN_RUNBOOK,
    ANN_TIER,
    SERVICE_MAPPED_ANNOTATIONS,
    TEAM_TYPES,
)
from .definitions import resolve_placeholder
from .refs import KIND_NAMES, RefError, parse_ref, ref_of_slug, slug_for
from .render import NO_DEFINITION
from .schema import is_placeholder
from .validate import _annotations, _email, _links, _ref_list, _tags, _text, _url, link_url_ok


class EntityBuilder:
    """Mixin of ``_Importer``: builds ``*_desired`` dicts (FKs as slugs)."""

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

    def _owner(self, e, allow_tribe):
        """spec.owner → (squad slug, tribe slug). Backstage allows any Group or User; the
        descriptor's owner is kept as written for export, Backline's permissions follow the
        owning team (a User's first team; a non-team Group owns systems and domains only)."""
        value = e.spec.get("owner")
        if value is None:
            return None, None
        kind, slug = self._ref(e, "spec.owner", value, "group", ("group", "user"))
        if kind is None:
            return None, None
        if not self._exists(kind, slug):
            explicit_kind = isinstance(value, str) and ":" in value
            if kind == "group" and not explicit_kind and self._exists("user", slug):
                kind = "user"
            else:
                self._missing(e, "spec.owner", kind, slug)
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

    # ---- phase 3: desired state
    def build(self):
        ctx = self.ctx
        groups = self.entities["group"]
        # group kind: team → squad, anything else → tribe
        self.group_kind = {}
        for slug, e in groups.items():
            gtype = _text(ctx, e, e.spec, "type", "spec.type", max_len=50)
            if not gtype:
                ctx.error(e.doc, e, "spec.type", "is required (team, tribe, business-unit, ...)")
                gtype = "team"
            e.gtype = gtype
            self.group_kind[slug] = "squad" if gtype in TEAM_TYPES else "tribe"
            if (
                self.group_kind[slug] == "squad"
                and slug in self.db_tribes
                and slug not in self.db_squads
            ):
                ctx.error(
                    e.doc,
                    e,
                    "spec.type",
                    f"{ref_of_slug('group', slug)} exists as a tribe; it cannot become a team",
                )
            if (
                self.group_kind[slug] == "tribe"
                and slug in self.db_squads
                and slug not in self.db_tribes
            ):
                ctx.error(
                    e.doc,
                    e,
                    "spec.type",
                    f"{ref_of_slug('group', slug)} exists as a team; it cannot become a {gtype}",
                )
        # parents and children
        parent = {}
        claimed_by = {}
        for slug, e in groups.items():
            if e.spec.get("parent") is not None:
                _, p = self._resolve(e, "spec.parent", e.spec["parent"], "group")
                if p == slug:
                    ctx.error(e.doc, e, "spec.parent", "a group cannot be its own parent")
                elif p:
                    parent[slug] = p
        for slug, e in groups.items():
            children = e.spec.get("children") or []
            if not isinstance(children, list):
                ctx.error(e.doc, e, "spec.children", "must be a list of group references")
                continue
            for i, value in enumerate(children):
                path = f"spec.children[{i}]"
                _, child = self._resolve(e, path, value, "group")
                if not child:
                    continue
                if child in groups:
                    if parent.get(child, slug) != slug:
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
                elif self._db_group_parent(child) != slug:
                    ctx.warn(
                        e.doc,
                        e,
                        f"{path}: {ref_of_slug('group', child)} is not in this import; its "
                        "parent is left as it is",
                    )
        self.group_parent = parent

        # users first: owners of kind user map to their team
        self.person_desired = {}
        self.person_order = {}
        members_of = defaultdict(list)  # person slug → [squad slug] from Group spec.members
        for slug, e in groups.items():
            for i, value in enumerate(_ref_list(ctx, e, "spec.members")):
                _, p = self._resolve(e, f"spec.members[{i}]", value, "user")
                if p and self.group_kind[slug] == "squad":
                    members_of[p].append(slug)
        for slug, e in self.entities["user"].items():
            self._build_user(e, members_of.get(slug, []))
        for p_slug, squads in members_of.items():
            if p_slug not in self.entities["user"]:  # a person already in the database
                current = self.memberships_of(p_slug)
                missing = [s for s in squads if s not in current]
                if missing:
                    p = self.db_person(p_slug)
                    self.person_desired[p_slug] = {
                        "name": p.name,
                        "email": p.email,
                        "picture": p.picture,
                        "memberships": frozenset(
                            {(s, r) for s, (_, r) in current.items()}
                            | {(s, "member") for s in missing}
                        ),
                    }
                    self.person_order[p_slug] = sorted(current) + missing

        self.tribe_desired, self.squad_desired = {}, {}
        for e in groups.values():
            self._build_group(e)
        self.domain_desired = {s: self._build_domain(e) for s, e in self.entities["domain"].items()}
        self.system_desired = {s: self._build_system(e) for s, e in self.entities["system"].items()}
        self.api_desired = {s: self._build_api(e) for s, e in self.entities["api"].items()}
        self.resource_desired = {
            s: self._build_resource(e) for s, e in self.entities["resource"].items()
        }
        self.service_desired = {
            s: self._build_component(e) for s, e in self.entities["component"].items()
        }
        originals.attach(self)
        foreign.build(self)

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
        profile = e.spec.get("profile") or {}
        if not isinstance(profile, dict):
            ctx.error(e.doc, e, "spec.profile", "must be a mapping")
            profile = {}
        name = (
            _text(ctx, e, profile, "displayName", "spec.profile.displayName", clip=200)
            or _text(ctx, e, e.metadata, "title", "metadata.title", clip=200)
            or e.slug[:200]
        )
        description = _text(ctx, e, e.metadata, "description", "metadata.description")
        email = _email(
            ctx, e, _text(ctx, e, profile, "email", "spec.profile.email"), "spec.profile.email"
        )
        picture = _url(
            ctx,
            e,
            _text(ctx, e, profile, "picture", "spec.profile.picture"),
            "spec.profile.picture",
        )
        links = _links(ctx, e)
        ann = _annotations(ctx, e)
        chain = self._ancestors(e) or []
        nearest_tribe = next((a for a in chain if self.group_type(a) == "tribe"), None)
        if self.group_kind[e.slug] == "tribe":
            direct = chain[0] if chain else None
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
                "email": email,
                "picture": picture,
                "links": links,
            }
        else:
            direct = chain[0] if chain else None
            self.squad_desired[e.slug] = {
                "name": name,
                "mission": description,
                "tribe": nearest_tribe,
                "parent": direct if direct and self.group_type(direct) == "squad" else None,
                "chat_channel": ann.get(ANN_CHAT, "")[:200],
                "oncall_contact": ann.get(ANN_ONCALL, "")[:200],
                "email": email,
                "picture": picture,
                "links": links,
            }

    def _build_user(self, e, extra_squads):
        ctx = self.ctx
        profile = e.spec.get("profile") or {}
        if not isinstance(profile, dict):
            ctx.error(e.doc, e, "spec.profile", "must be a mapping")
            profile = {}
        name = (
            _text(ctx, e, profile, "displayName", "spec.profile.displayName", clip=200)
            or _text(ctx, e, e.metadata, "title", "metadata.title", clip=200)
            or e.name[:200]
        )
        email = _email(
            ctx, e, _text(ctx, e, profile, "email", "spec.profile.email"), "spec.profile.email"
        )
        picture = _url(
            ctx,
            e,
            _text(ctx, e, profile, "picture", "spec.profile.picture"),
            "spec.profile.picture",
        )
        squads = []
        for i, value in enumerate(_ref_list(ctx, e, "spec.memberOf")):
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
        memberships = frozenset(
            (
                s,
                roles.get(s, "member")
                if explicit
                else (current[s][1] if s in current else "member"),
            )
            for s in squads
        )
        self.person_order[e.slug] = squads
        self.person_desired[e.slug] = {
            "name": name,
            "email": email,
            "picture": picture,
            "memberships": memberships,
        }

    def _common(self, e):
        ctx = self.ctx
        return {
            "name": _text(ctx, e, e.metadata, "title", "metadata.title", clip=200) or e.slug[:200],
            "description": _text(ctx, e, e.metadata, "description", "metadata.description"),
        }

    def _system_ref(self, e):
        if e.spec.get("system") is None:
            return None
        return self._resolve(e, "spec.system", e.spec["system"], "system")[1]

    def _lifecycle(self, e):
        """(Backline's lifecycle, the descriptor's word when it differs): Backstage allows any
        string (``sandbox``, ``decommissioned``...)."""
        value = _text(self.ctx, e, e.spec, "lifecycle", "spec.lifecycle", clip=200)
        if not value:
            return Lifecycle.EXPERIMENTAL.value, ""
        mapped = map_lifecycle(value)
        return mapped, "" if value == mapped else value

    def _build_domain(self, e):
        squad, tribe = self._owner(e, allow_tribe=True)
        tribe = tribe or self._squad_tribe(squad)
        if e.spec.get("subdomainOf") is not None:  # kept in the descriptor
            self._ref(e, "spec.subdomainOf", e.spec["subdomainOf"], "domain", ("domain",))
        return {
            **self._common(e),
            "owner": squad,
            "owner_tribe": tribe,
            "tags": _tags(self.ctx, e),
            "links": _links(self.ctx, e),
        }

    def _build_system(self, e):
        squad, tribe = self._owner(e, allow_tribe=True)
        tribe = tribe or self._squad_tribe(squad)
        domain = None
        if e.spec.get("domain") is not None:
            domain = self._resolve(e, "spec.domain", e.spec["domain"], "domain")[1]
        return {
            **self._common(e),
            "owner": squad,
            "owner_tribe": tribe,
            "domain": domain,
            "tags": _tags(self.ctx, e),
            "links": _links(self.ctx, e),
        }

    def _build_api(self, e):
        ctx = self.ctx
        squad, _ = self._owner(e, allow_tribe=False)
        definition = self._definition(e)
        lifecycle, lifecycle_raw = self._lifecycle(e)
        return {
            **self._common(e),
            "type": _text(ctx, e, e.spec, "type", "spec.type", max_len=50) or "openapi",
            "lifecycle": lifecycle,
            "lifecycle_raw": lifecycle_raw,
            "owner": squad,
            "system": self._system_ref(e),
            "definition": definition,
            "tags": _tags(ctx, e),
            "links": _links(ctx, e),
        }

    def _definition(self, e):
        value = e.spec.get("definition")
        if value is None:
            return ""
        if isinstance(value, str):
            return "" if value == NO_DEFINITION else value
        if is_placeholder(value):
            existing = self.db_apis.get(e.slug)
            return resolve_placeholder(self.ctx, e, value, existing.definition if existing else "")
        return yaml.safe_dump(value, sort_keys=False, allow_unicode=True)

    def _build_resource(self, e):
        ctx = self.ctx
        squad, _ = self._owner(e, allow_tribe=False)
        return {
            **self._common(e),
            "type": _text(ctx, e, e.spec, "type", "spec.type", max_len=50) or "database",
            "owner": squad,
            "system": self._system_ref(e),
            "tags": _tags(ctx, e),
            "links": _links(ctx, e),
        }

    def _build_component(self, e):
        ctx = self.ctx
        squad, _ = self._owner(e, allow_tribe=False)
        ann = _annotations(ctx, e)
        tier = 3
        if ANN_TIER in ann:
            try:
                tier = int(str(ann[ANN_TIER]).strip().lower().removeprefix("tier").strip(" -_"))
                if tier not in (1, 2, 3):
                    raise ValueError
            except ValueError:
                ctx.error(
                    e.doc,
                    e,
                    f"metadata.annotations[{ANN_TIER}]",
                    f"'{ann[ANN_TIER]}' is not a tier 1, 2 or 3",
                )
                tier = 3
        repo = ann.get(ANN_REPO, "")
        if not repo and ann.get(ANN_GITHUB):
            repo = f"https://github.com/{ann[ANN_GITHUB].strip('/')}"
        runbook = ann.get(ANN_RUNBOOK, "")
        if runbook and not link_url_ok(runbook):
            ctx.error(e.doc, e, f"metadata.annotations[{ANN_RUNBOOK}]", "must be an http(s) URL")
            runbook = ""
        for key, value, limit in (
            (ANN_REPO, repo, 500),
            (ANN_RUNBOOK, runbook, 500),
            (ANN_ONCALL, ann.get(ANN_ONCALL, ""), 200),
            (ANN_BRANCH, ann.get(ANN_BRANCH, ""), 200),
        ):
            if len(value) > limit:
                ctx.error(
                    e.doc, e, f"metadata.annotations[{key}]", f"is longer than {limit} characters"
                )
        stored_ann = {k: v for k, v in ann.items() if k not in SERVICE_MAPPED_ANNOTATIONS}
        if ANN_GITHUB in ann and ANN_REPO in ann:
            stored_ann[ANN_GITHUB] = ann[ANN_GITHUB]
        deps = set()
        for i, value in enumerate(_ref_list(ctx, e, "spec.dependsOn")):
            kind, slug = self._resolve(
                e, f"spec.dependsOn[{i}]", value, "component", ("component", "resource")
            )
            if kind:
                if kind == "component" and slug == e.slug:
                    ctx.error(
                        e.doc, e, f"spec.dependsOn[{i}]", "a component cannot depend on itself"
                    )
                    continue
                deps.add((kind, slug))
        apis = {}
        for fld in ("providesApis", "consumesApis"):
            apis[fld] = set()
            for i, value in enumerate(_ref_list(ctx, e, f"spec.{fld}")):
                _, slug = self._resolve(e, f"spec.{fld}[{i}]", value, "api")
                if slug:
                    apis[fld].add(slug)
        lifecycle, lifecycle_raw = self._lifecycle(e)
        if e.spec.get("subcomponentOf") is not None:  # kept in the descriptor
            self._ref(
                e, "spec.subcomponentOf", e.spec["subcomponentOf"], "component", ("component",)
            )
        return {
            **self._common(e),
            "owner": squad,
            "system": self._system_ref(e),
            "type": _text(ctx, e, e.spec, "type", "spec.type", max_len=50) or "service",
            "lifecycle": lifecycle,
            "lifecycle_raw": lifecycle_raw,
            "tier": tier,
            "repository_url": repo,
            "default_branch": ann.get(ANN_BRANCH, "") or "main",
            "runbook_url": runbook,
            "oncall": ann.get(ANN_ONCALL, ""),
            "links": _links(ctx, e),
            "annotations": stored_ann,
            "tags": frozenset(_tags(ctx, e)),
            "provides": frozenset(apis["providesApis"]),
            "consumes": frozenset(apis["consumesApis"]),
            "deps": frozenset(deps),
        }

    # ---- phase 4: compare with the database
