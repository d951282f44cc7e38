"""The catalog tables an import writes, in the order it writes them: a row's foreign keys point
to tables written before it (or, for ``late_fks``, to its own table)."""

from dataclasses import dataclass

from squads import models
from squads.services import SERVICE_DESCRIPTOR_FIELDS


def _fields(names):
    return tuple(names.split())


@dataclass(frozen=True)
class Table:
    model: type
    kind: str  # the plan's word: tribe, squad, person, domain, system, api, resource, component
    rows: str  # the importer's attribute holding the rows of this table the import names
    fks: dict  # foreign key field → the kind of table it points to
    fields: tuple  # the fields a descriptor sets
    late_fks: tuple = ()  # keys to the same table: set once every new row exists

    @property
    def entity_kind(self):
        """The Backstage kind of the entities stored in this table (lower case)."""
        return {"tribe": "group", "squad": "group", "person": "user"}.get(self.kind, self.kind)


GROUP_TABLES = (
    Table(
        models.Tribe,
        "tribe",
        "db_tribes",
        {},
        _fields("name description kind parent email picture links"),
        late_fks=("parent",),
    ),
    Table(
        models.Squad,
        "squad",
        "db_squads",
        {"tribe": "tribe"},
        _fields("name mission tribe parent chat_channel oncall_contact email picture links"),
        late_fks=("parent",),
    ),
)
# Tables loaded by slug ↔ id only (the full rows just for the entities an import names).
ENTITY_TABLES = (
    Table(models.Person, "person", "db_persons", {}, _fields("name email picture")),
    Table(
        models.Domain,
        "domain",
        "db_domains",
        {"owner": "squad", "owner_tribe": "tribe"},
        _fields("name description owner owner_tribe tags links"),
    ),
    Table(
        models.System,
        "system",
        "db_systems",
        {"owner": "squad", "owner_tribe": "tribe", "domain": "domain"},
        _fields("name description owner owner_tribe domain tags links"),
    ),
    Table(
        models.Api,
        "api",
        "db_apis",
        {"owner": "squad", "system": "system"},
        _fields("name description type lifecycle lifecycle_raw owner system definition tags links"),
    ),
    Table(
        models.Resource,
        "resource",
        "db_resources",
        {"owner": "squad", "system": "system"},
        _fields("name description type owner system tags links"),
    ),
    Table(
        models.Service,
        "component",
        "db_services",
        {"owner": "squad", "system": "system"},
        (*SERVICE_DESCRIPTOR_FIELDS, "lifecycle_raw"),  # the catalog's one list, + the raw word
    ),
)
TABLES = GROUP_TABLES + ENTITY_TABLES
