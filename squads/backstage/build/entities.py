"""Domains, Systems, APIs and Resources, and the fields they share with Components."""

import yaml

from portal.limits import DESCRIPTION_MAX, FIELD_LIMITS
from squads.models import Lifecycle, map_lifecycle

from ..definitions import resolve_placeholder
from ..render import NO_DEFINITION
from ..schema import is_placeholder
from ..validate import _links, _tags, _text


class EntityKindsBuilder:
    """Mixin of ``EntityBuilder``."""

    def _common(self, e):
        ctx = self.ctx
        return {
            "name": _text(ctx, e, e.metadata, "title", "metadata.title", clip=200) or e.slug[:200],
            "description": _text(
                ctx, e, e.metadata, "description", "metadata.description", max_len=DESCRIPTION_MAX
            ),
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
        limit = FIELD_LIMITS["squads.Api"]["definition"]
        if len(definition) > limit:
            ctx.error(
                e.doc,
                e,
                "spec.definition",
                f"is {len(definition):,} characters long; at most {limit:,} allowed",
            )
            definition = ""
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
