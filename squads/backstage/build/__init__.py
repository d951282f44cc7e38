"""From entities to desired rows: references resolved against the import and the database,
every problem recorded with its field.

One mixin per sub-domain: ``resolving`` (references, owners), ``groups`` (tribes, squads and
their tree), ``people`` (users, memberships), ``entities`` (domains, systems, APIs,
resources), ``components`` (services)."""

from .. import foreign, originals
from .components import ComponentBuilder
from .entities import EntityKindsBuilder
from .groups import GroupBuilder
from .people import PersonBuilder
from .resolving import RefResolver


class EntityBuilder(RefResolver, GroupBuilder, PersonBuilder, EntityKindsBuilder, ComponentBuilder):
    """Mixin of ``_Importer``: builds ``*_desired`` dicts (FKs as slugs)."""

    # ---- phase 3: desired state
    def build(self):
        groups = self.entities["group"]
        self._classify_groups(groups)  # team → squad, anything else → tribe
        self._link_groups(groups)  # parents and children
        self._build_people(groups)  # users first: owners of kind user map to their team
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
