"""Domain operations on the catalog. Every door (HTML, API, command, import) calls these.

Every function is ``verb_noun(obj, *, actor, ...)``; refusals raise ``portal.errors``. The
service field lists below are the one place forms, serializers and the Backstage writer take
theirs from.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from portal import audit, events
from portal.actors import Actor
from portal.errors import Invalid
from squads import stitch
from squads.fields import SERVICE_DESCRIPTOR_FIELDS, SERVICE_FIELDS, SERVICE_PAGE_FIELDS
from squads.models import Dependency, Service, Squad, Tag

__all__ = ["SERVICE_DESCRIPTOR_FIELDS", "SERVICE_FIELDS", "SERVICE_PAGE_FIELDS"]  # and the verbs

SECRET_FIELDS = {"webhook_secret"}
SQUAD_FIELDS = ("name", "mission", "chat_channel", "oncall_contact", "email", "links")


def _full_clean(obj: Any) -> None:
    try:
        obj.full_clean()
    except ValidationError as exc:
        raise Invalid.from_django(exc) from None


def _require_write(actor: Actor, squad: Any, what: str) -> None:
    if squad is None:
        actor.require_admin(f"{what} without an owning squad")
        return
    actor.require("catalog:write", squad, what)


def set_tags(service: Service, names: Iterable[str]) -> None:
    tags = []
    for name in sorted({n.strip().lower() for n in names if n and n.strip()}):
        tag, _ = Tag.objects.get_or_create(name=name[:63])
        tags.append(tag)
    service.tags.set(tags)


def create_service(
    owner: Squad | None,
    *,
    actor: Actor,
    slug: str,
    tags: Iterable[str] = (),
    provides_apis: Iterable[Any] = (),
    consumes_apis: Iterable[Any] = (),
    **fields: Any,
) -> Service:
    _require_write(actor, owner, f"create service '{slug}'")
    unknown = set(fields) - set(SERVICE_FIELDS)
    if unknown:
        raise Invalid(errors={k: "Unknown field." for k in sorted(unknown)})
    with transaction.atomic(), stitch.batch():
        clash = Service.objects.filter(slug__iexact=slug).exclude(slug=slug).first()
        if clash is not None:  # Backstage compares names case-insensitively; so does an import
            raise Invalid(errors={"slug": f"Service '{clash.slug}' already exists."})
        service = Service(slug=slug, owner=owner, **fields)
        _full_clean(service)
        service.save()
        set_tags(service, tags)
        service.provides_apis.set(provides_apis)
        service.consumes_apis.set(consumes_apis)
        audit.record(actor, "service.create", service, squad=owner)
        events.emit("catalog.service.created", owner, {"service": service.slug})
    return service


def update_service(
    service: Service,
    *,
    actor: Actor,
    tags: Iterable[str] | None = None,
    provides_apis: Iterable[Any] | None = None,
    consumes_apis: Iterable[Any] | None = None,
    **fields: Any,
) -> Service:
    """Update fields of a service. The actor needs write access to the current owner and, when
    the owner changes, to the new owner as well."""
    _require_write(actor, service.owner, f"change service '{service.slug}'")
    new_owner = fields.get("owner", service.owner)
    if "owner" in fields and new_owner != service.owner:
        _require_write(actor, new_owner, f"hand service '{service.slug}' to another squad")
    with transaction.atomic(), stitch.batch():
        locked = Service.objects.select_for_update().get(pk=service.pk)
        changed: dict[str, Any] = {}
        for key, value in fields.items():
            if key not in SERVICE_FIELDS:
                raise Invalid(errors={key: "This field cannot be changed."})
            old = getattr(locked, key)
            if old != value:
                changed[key] = "***" if key in SECRET_FIELDS else _jsonable(value)
                setattr(locked, key, value)
        _full_clean(locked)
        locked.save()
        if tags is not None:
            before = sorted(locked.tags.values_list("name", flat=True))
            set_tags(locked, tags)
            after = sorted(locked.tags.values_list("name", flat=True))
            if before != after:
                changed["tags"] = after
        for rel, value in (("provides_apis", provides_apis), ("consumes_apis", consumes_apis)):
            if value is not None:
                old = set(getattr(locked, rel).values_list("slug", flat=True))
                value = list(value)
                getattr(locked, rel).set(value)
                new = {a.slug for a in value}
                if old != new:
                    changed[rel] = sorted(new)
        if changed:
            audit.record(
                actor, "service.update", locked, squad=locked.owner, data={"changed": changed}
            )
            events.emit(
                "catalog.service.updated",
                locked.owner,
                {"service": locked.slug, "changed": sorted(changed)},
            )
    return locked


def delete_service(service: Service, *, actor: Actor) -> None:
    _require_write(actor, service.owner, f"delete service '{service.slug}'")
    with transaction.atomic(), stitch.batch():
        audit.record(
            actor, "service.delete", service, squad=service.owner, data={"slug": service.slug}
        )
        events.emit("catalog.service.deleted", service.owner, {"service": service.slug})
        service.delete()


def add_dependency(
    source: Service,
    *,
    actor: Actor,
    target_service: Service | None = None,
    target_resource: Any = None,
) -> Dependency:
    _require_write(actor, source.owner, f"change dependencies of '{source.slug}'")
    if (target_service is None) == (target_resource is None):
        raise Invalid("Give exactly one of target_service or target_resource.")
    if target_service is not None and target_service.pk == source.pk:
        raise Invalid(errors={"target_service": "A service cannot depend on itself."})
    with transaction.atomic(), stitch.batch():
        dep, created = Dependency.objects.get_or_create(
            source=source, target_service=target_service, target_resource=target_resource
        )
        if created:
            audit.record(actor, "dependency.create", dep, squad=source.owner)
    return dep


def remove_dependency(dep: Dependency, *, actor: Actor) -> None:
    _require_write(actor, dep.source.owner, f"change dependencies of '{dep.source.slug}'")
    with transaction.atomic(), stitch.batch():
        audit.record(actor, "dependency.delete", dep, squad=dep.source.owner)
        dep.delete()


def update_squad(squad: Squad, *, actor: Actor, **fields: Any) -> Squad:
    _require_write(actor, squad, f"change squad '{squad.slug}'")
    with transaction.atomic(), stitch.batch():
        locked = Squad.objects.select_for_update().get(pk=squad.pk)
        changed: dict[str, Any] = {}
        for key, value in fields.items():
            if key not in SQUAD_FIELDS:
                raise Invalid(errors={key: "This field cannot be changed here."})
            if getattr(locked, key) != value:
                changed[key] = _jsonable(value)
                setattr(locked, key, value)
        _full_clean(locked)
        locked.save()
        if changed:
            audit.record(actor, "squad.update", locked, squad=locked, data={"changed": changed})
    return locked


def _jsonable(value: Any) -> Any:
    if hasattr(value, "_meta"):
        return getattr(value, "slug", str(value))
    return value
