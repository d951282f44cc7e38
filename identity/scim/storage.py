"""``scim2-server``'s storage interface over Backline's tables: ``DirectoryUser`` (+ Person and
Django user) and ``DirectoryGroup``. Writes go through ``identity.scim.services``.

Searches run in SQL when every term of the filter is on a column (what Okta and Entra ID send:
``userName eq``, ``externalId eq``, ``displayName eq``, ``id eq``, ``active eq``, and ``and`` /
``or`` / ``not`` of those); any other filter is evaluated by ``scim2-models`` on each resource
of the type, so every filter the schema allows answers correctly.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from scim2_models import (
    InvalidValueException,
    NotFoundException,
    PreconditionFailedException,
    Resource,
    ResourceType,
    ResponseParameters,
    ScimFilter,
    SearchRequest,
    UniquenessException,
)
from scim2_models.path import (
    CompareOperator,
    Comparison,
    FilterNode,
    LogicalExpr,
    LogicalOperator,
    Not,
    Present,
)
from scim2_server.storage import ScimStorage, SearchPage

from identity.models import DirectoryGroup, DirectoryUser
from identity.scim import services
from portal.actors import Actor
from portal.errors import Conflict, DomainError

CORE = "urn:ietf:params:scim:schemas:core:2.0:"

# (attribute, sub-attribute) -> (column, case-insensitive)
COLUMNS = {
    "User": {
        ("id", None): ("pk", False),
        ("username", None): ("user_name", True),
        ("externalid", None): ("external_id", False),
        ("active", None): ("person__active", False),
    },
    "Group": {
        ("id", None): ("pk", False),
        ("displayname", None): ("display_name", True),
        ("externalid", None): ("external_id", False),
    },
}
LOOKUPS = {
    CompareOperator.eq: "exact",
    CompareOperator.co: "contains",
    CompareOperator.sw: "startswith",
    CompareOperator.ew: "endswith",
}


class NotInSql(Exception):
    """The filter names something that is not a column: evaluate it in Python."""


def filter_to_q(node: FilterNode, columns: dict) -> Q:
    if isinstance(node, LogicalExpr):
        qs = [filter_to_q(t, columns) for t in node.terms]
        out = qs[0]
        for q in qs[1:]:
            out = (out & q) if node.op == LogicalOperator.and_ else (out | q)
        return out
    if isinstance(node, Not):
        return ~filter_to_q(node.expr, columns)
    if isinstance(node, Present | Comparison):
        path = node.attr_path
        if path.uri and not path.uri.lower().startswith(CORE.lower()):
            raise NotInSql
        key = (path.attr.lower(), path.sub_attr.lower() if path.sub_attr else None)
        if key not in columns:
            raise NotInSql
        column, insensitive = columns[key]
        if isinstance(node, Present):
            if column == "person__active":
                raise NotInSql
            return Q(pk__isnull=False) if column in ("pk", "user_name") else ~Q(**{column: ""})
        op = CompareOperator.eq if node.op == CompareOperator.ne else node.op
        if op not in LOOKUPS or (column == "person__active") != isinstance(node.value, bool):
            raise NotInSql
        if isinstance(node.value, bool) and op != CompareOperator.eq:
            raise NotInSql
        lookup = LOOKUPS[op]
        if insensitive:
            lookup = "i" + lookup
        q = Q(**{f"{column}__{lookup}": node.value})
        return ~q if node.op == CompareOperator.ne else q
    raise NotInSql


def _version(value: str | None) -> int | None:
    if not value:
        return None
    digits = value.removeprefix("W/").strip('"')
    return int(digits) if digits.isdigit() else -1


def _check_version(current: int, expected: str | None) -> None:
    wanted = _version(expected)
    if wanted is not None and wanted != current:
        raise PreconditionFailedException(detail="The resource changed since that version.")


def _scim_error(exc: DomainError) -> Exception:
    if isinstance(exc, Conflict):
        return UniquenessException(detail=exc.text)
    return InvalidValueException(detail=exc.text)


class DjangoStorage(ScimStorage):
    def __init__(self, actor: Actor):
        self.actor = actor

    def operation(self) -> AbstractContextManager[None]:
        return transaction.atomic()

    # --- reading --------------------------------------------------------------------------------
    def _users(self) -> QuerySet[DirectoryUser]:
        return DirectoryUser.objects.select_related("person").prefetch_related("groups")

    def _groups(self) -> QuerySet[DirectoryGroup]:
        return DirectoryGroup.objects.prefetch_related("members")

    def _meta(self, resource_type: ResourceType, row: Any) -> dict:
        return {
            "resourceType": resource_type.name,
            "created": row.created_at.isoformat(),
            "lastModified": row.updated_at.isoformat(),
            "version": f'W/"{row.version}"',
        }

    def _resource(self, resource_type: ResourceType, row: Any) -> Resource[Any]:
        from identity.scim.provider import service

        model = service().get_model(resource_type)
        data = dict(row.resource)
        data.setdefault("schemas", [str(model.__schema__)])
        data.update(id=row.pk, meta=self._meta(resource_type, row))
        if row.external_id:
            data["externalId"] = row.external_id
        if isinstance(row, DirectoryUser):
            data["userName"] = row.user_name
            if "active" in data or not row.person.active:  # Backline's say wins: sign-in follows it
                data["active"] = row.person.active
            groups = [{"value": g.pk, "$ref": f"Groups/{g.pk}", "display": g.display_name}
                      for g in row.groups.all()]  # fmt: skip
            if groups:
                data["groups"] = groups
        else:
            data["displayName"] = row.display_name
            sent = {str(m.get("value")): m for m in data.pop("memberEntries", [])}
            members = [{"display": m.user_name, "type": "User", **sent.get(m.pk, {}),
                        "value": m.pk, "$ref": f"Users/{m.pk}"}
                       for m in row.members.all()]  # fmt: skip
            if members:
                data["members"] = members
        return model.model_validate(data)

    def _queryset(self, resource_type: ResourceType):
        if resource_type.name == "User":
            return self._users()
        return self._groups()

    def _row(self, resource_type: ResourceType, resource_id: str, lock: bool = False):
        qs = self._queryset(resource_type)
        if lock:
            qs = qs.select_for_update(of=("self",), no_key=True)
        row = qs.filter(pk=resource_id).first()
        if row is None:
            raise NotFoundException(detail=f"{resource_type.name} '{resource_id}' not found")
        return row

    def get(
        self,
        resource_type: ResourceType,
        resource_id: str,
        *,
        response_parameters: ResponseParameters[Any] | None = None,
    ) -> Resource[Any]:
        return self._resource(resource_type, self._row(resource_type, resource_id, lock=True))

    def search(
        self,
        resource_types: list[ResourceType],
        search_request: SearchRequest[Any],
        *,
        position: Any = None,
    ) -> SearchPage:
        start, count = search_request.start_index_0 or 0, search_request.count
        stop = None if count is None else start + count
        found = [self._matching(rt, search_request.filter) for rt in resource_types]
        if len(found) == 1 and isinstance(found[0][1], QuerySet):  # paged in SQL
            resource_type, qs = found[0]
            rows = qs[start:stop]
            return SearchPage(qs.count(), [self._resource(resource_type, r) for r in rows])
        # the root (/, /.search: Users then Groups as one collection) or a filter in Python
        matches = [
            resource if isinstance(rows, list) else self._resource(rt, resource)
            for rt, rows in found
            for resource in rows
        ]
        return SearchPage(len(matches), matches[start:stop])

    def _matching(self, resource_type: ResourceType, scim_filter) -> tuple[ResourceType, Any]:
        """The rows matching ``scim_filter`` as a QuerySet, or the resources as a list when the
        filter is evaluated by scim2-models (it names something that is not a column)."""
        qs = self._queryset(resource_type).order_by("created_at", "pk")
        if scim_filter is None:
            return resource_type, qs
        try:
            return resource_type, qs.filter(
                filter_to_q(scim_filter.ast, COLUMNS[resource_type.name])
            )
        except NotInSql:
            from identity.scim.provider import service

            model = service().get_model(resource_type)
            bound = ScimFilter[model](str(scim_filter))  # type: ignore[valid-type]
            resources = (self._resource(resource_type, row) for row in qs)
            return resource_type, [r for r in resources if bound.match(r)]

    # --- writing --------------------------------------------------------------------------------
    @staticmethod
    def _doc(resource: Resource[Any]) -> dict[str, Any]:
        return resource.model_dump(mode="json")

    @staticmethod
    def _member_ids(resource: Resource[Any]) -> list[str]:
        return [str(m.value) for m in (getattr(resource, "members", None) or []) if m.value]

    def create(self, resource_type: ResourceType, resource: Resource[Any]) -> Resource[Any]:
        try:
            if resource_type.name == "User":
                row: Any = services.provision_directory_user(self._doc(resource), actor=self.actor)
            else:
                row = services.create_directory_group(
                    self._doc(resource), self._member_ids(resource), actor=self.actor
                )
        except DomainError as exc:
            raise _scim_error(exc) from exc
        except IntegrityError as exc:  # a concurrent create of the same userName won the race
            raise UniquenessException(detail="That userName was just taken.") from exc
        return self.get(resource_type, row.pk)

    def update(
        self,
        resource_type: ResourceType,
        resource: Resource[Any],
        *,
        expected_version: str | None = None,
    ) -> Resource[Any]:
        row = self._row(resource_type, str(resource.id), lock=True)
        _check_version(row.version, expected_version)
        try:
            if resource_type.name == "User":
                services.update_directory_user(row, self._doc(resource), actor=self.actor)
            else:
                services.update_directory_group(
                    row, self._doc(resource), self._member_ids(resource), actor=self.actor
                )
        except DomainError as exc:
            raise _scim_error(exc) from exc
        return self.get(resource_type, row.pk)

    def delete(
        self, resource_type: ResourceType, resource_id: str, *, expected_version: str | None = None
    ) -> None:
        row = self._row(resource_type, resource_id, lock=True)
        _check_version(row.version, expected_version)
        if resource_type.name == "User":
            services.delete_directory_user(row, actor=self.actor)
        else:
            services.delete_directory_group(row, actor=self.actor)
