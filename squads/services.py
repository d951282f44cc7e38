"""Domain operations on the catalog. Every door (HTML, API, command, import) calls these."""

from django.core.exceptions import ValidationError
from django.db import transaction

from portal import audit, events
from squads.models import Dependency, Service, Squad, Tag

SERVICE_FIELDS = (
    "name",
    "description",
    "owner",
    "system",
    "type",
    "lifecycle",
    "tier",
    "repository_url",
    "default_branch",
    "runbook_url",
    "oncall",
    "links",
    "annotations",
    "webhook_secret",
    "metrics_urls",
)
SECRET_FIELDS = {"webhook_secret"}


def _require_write(actor, squad, what):
    if squad is None:
        actor.require_admin(f"{what} without an owning squad")
        return
    actor.require("catalog:write", squad, what)


def set_tags(service, names):
    tags = []
    for name in sorted({n.strip().lower() for n in names if n and n.strip()}):
        tag, _ = Tag.objects.get_or_create(name=name[:63])
        tags.append(tag)
    service.tags.set(tags)


def create_service(
    actor, *, slug, tags=(), provides_apis=(), consumes_apis=(), **fields
) -> Service:
    owner = fields.get("owner")
    _require_write(actor, owner, f"create service '{slug}'")
    unknown = set(fields) - set(SERVICE_FIELDS)
    if unknown:
        raise ValidationError({k: "Unknown field." for k in unknown})
    with transaction.atomic():
        clash = Service.objects.filter(slug__iexact=slug).exclude(slug=slug).first()
        if clash is not None:  # Backstage compares names case-insensitively; so does an import
            raise ValidationError({"slug": f"Service '{clash.slug}' already exists."})
        service = Service(slug=slug, **fields)
        service.full_clean()
        service.save()
        set_tags(service, tags)
        service.provides_apis.set(provides_apis)
        service.consumes_apis.set(consumes_apis)
        audit.record(actor, "service.create", service, squad=owner)
        events.emit("catalog.service.created", owner, {"service": service.slug})
    return service


def update_service(
    actor, service: Service, *, tags=None, provides_apis=None, consumes_apis=None, **fields
) -> Service:
    """Update fields of a service. The actor needs write access to the current owner and, when
    the owner changes, to the new owner as well."""
    _require_write(actor, service.owner, f"change service '{service.slug}'")
    new_owner = fields.get("owner", service.owner)
    if "owner" in fields and new_owner != service.owner:
        _require_write(actor, new_owner, f"hand service '{service.slug}' to another squad")
    with transaction.atomic():
        locked = Service.objects.select_for_update().get(pk=service.pk)
        changed = {}
        for key, value in fields.items():
            if key not in SERVICE_FIELDS:
                raise ValidationError({key: "This field cannot be changed."})
            old = getattr(locked, key)
            if old != value:
                changed[key] = "***" if key in SECRET_FIELDS else _jsonable(value)
                setattr(locked, key, value)
        locked.full_clean()
        locked.save()
        if tags is not None:
            before = sorted(locked.tags.values_list("name", flat=True))
            set_tags(locked, tags)
            after = sorted(locked.tags.values_list("name", flat=True))
            if before != after:
                changed["tags"] = after
        for rel, value in (("provides_apis", provides_apis), ("consumes_apis", consumes_apis)):
            if value is not None:
                before = set(getattr(locked, rel).values_list("slug", flat=True))
                getattr(locked, rel).set(value)
                after = {a.slug for a in value}
                if before != after:
                    changed[rel] = sorted(after)
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


def delete_service(actor, service: Service):
    _require_write(actor, service.owner, f"delete service '{service.slug}'")
    with transaction.atomic():
        audit.record(
            actor, "service.delete", service, squad=service.owner, data={"slug": service.slug}
        )
        events.emit("catalog.service.deleted", service.owner, {"service": service.slug})
        service.delete()


def add_dependency(
    actor, source: Service, *, target_service=None, target_resource=None
) -> Dependency:
    _require_write(actor, source.owner, f"change dependencies of '{source.slug}'")
    if (target_service is None) == (target_resource is None):
        raise ValidationError("Give exactly one of target_service or target_resource.")
    if target_service is not None and target_service.pk == source.pk:
        raise ValidationError({"target_service": "A service cannot depend on itself."})
    with transaction.atomic():
        dep, created = Dependency.objects.get_or_create(
            source=source, target_service=target_service, target_resource=target_resource
        )
        if created:
            audit.record(actor, "dependency.create", dep, squad=source.owner)
    return dep


def remove_dependency(actor, dep: Dependency):
    _require_write(actor, dep.source.owner, f"change dependencies of '{dep.source.slug}'")
    with transaction.atomic():
        audit.record(actor, "dependency.delete", dep, squad=dep.source.owner)
        dep.delete()


def update_squad(actor, squad: Squad, **fields) -> Squad:
    _require_write(actor, squad, f"change squad '{squad.slug}'")
    allowed = {"name", "mission", "chat_channel", "oncall_contact", "email", "links"}
    with transaction.atomic():
        locked = Squad.objects.select_for_update().get(pk=squad.pk)
        changed = {}
        for key, value in fields.items():
            if key not in allowed:
                raise ValidationError({key: "This field cannot be changed here."})
            if getattr(locked, key) != value:
                changed[key] = _jsonable(value)
                setattr(locked, key, value)
        locked.full_clean()
        locked.save()
        if changed:
            audit.record(actor, "squad.update", locked, squad=locked, data={"changed": changed})
    return locked


def _jsonable(value):
    if hasattr(value, "_meta"):
        return getattr(value, "slug", str(value))
    return value
