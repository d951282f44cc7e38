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

from portal import audit, events, urlguard
from portal.actors import Actor
from portal.errors import Invalid
from portal.gitsource import validate_remote
from portal.urlsecrets import keep_if_redacted, redact_credentials
from squads import stitch
from squads.discovery.models import descriptor_of
from squads.fields import (
    SERVICE_DESCRIPTOR_FIELDS,
    SERVICE_FIELDS,
    SERVICE_PAGE_FIELDS,
    SERVICE_ROW_FIELDS,
)
from squads.models import Dependency, Service, Squad, Tag

__all__ = [  # and the verbs
    "SERVICE_DESCRIPTOR_FIELDS",
    "SERVICE_FIELDS",
    "SERVICE_PAGE_FIELDS",
    "SERVICE_ROW_FIELDS",
]

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


def check_service_urls(fields: dict[str, Any]) -> None:
    """The outbound URL guard at save: ``metrics_urls`` (scraped every few seconds) and
    ``repository_url`` (cloned by pipelines) refused with a 400 naming the field."""
    if fields.get("repository_url"):
        validate_remote(fields["repository_url"], field="repository_url")
    for i, entry in enumerate(fields.get("metrics_urls") or []):
        url = entry.get("url") if isinstance(entry, dict) else entry
        if isinstance(url, str) and url.strip():
            urlguard.validate_url(url, use="scrape", field=f"metrics_urls[{i}]")


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
    check_service_urls(fields)
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
    _refuse_descriptor_fields(service, fields, tags, provides_apis, consumes_apis)
    new_owner = fields.get("owner", service.owner)
    if "owner" in fields and new_owner != service.owner:
        _require_write(actor, new_owner, f"hand service '{service.slug}' to another squad")
    check_service_urls({k: v for k, v in fields.items() if getattr(service, k, None) != v})
    with transaction.atomic(), stitch.batch():
        locked = Service.objects.select_for_update(no_key=True).get(pk=service.pk)
        changed = _set_fields(locked, fields, SERVICE_FIELDS, "This field cannot be changed.")
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


def _refuse_descriptor_fields(service: Service, fields: dict, *relations: Any) -> None:
    """Issue 18: a service GitHub discovery imported is edited in its repository's descriptor;
    changing a field that file owns here is refused with a message naming the file."""
    names = [
        n for n in fields if n in SERVICE_DESCRIPTOR_FIELDS and fields[n] != getattr(service, n)
    ]
    for name, value in zip(("tags", "provides_apis", "consumes_apis"), relations, strict=True):
        if value is not None and service.pk:
            attr = "name" if name == "tags" else "slug"
            now = set(getattr(service, name).values_list(attr, flat=True))
            if name == "tags":
                wanted = {v.strip().lower()[:63] for v in value if v and v.strip()}
            else:
                wanted = {getattr(v, attr, v) for v in value}
            if wanted != now:
                names.append(name)
    if not names:
        return
    found = descriptor_of("component", service.slug)
    if found is None:
        return
    repo, path = found
    message = (
        f"This field is set by {path} in the GitHub repository {repo.full_name} "
        f"({repo.url_of(path)}); change it there and discovery imports it."
    )
    raise Invalid(errors={name: [message] for name in names})


def update_squad(squad: Squad, *, actor: Actor, **fields: Any) -> Squad:
    _require_write(actor, squad, f"change squad '{squad.slug}'")
    with transaction.atomic(), stitch.batch():
        locked = Squad.objects.select_for_update(no_key=True).get(pk=squad.pk)
        changed = _set_fields(locked, fields, SQUAD_FIELDS, "This field cannot be changed here.")
        if changed:
            audit.record(actor, "squad.update", locked, squad=locked, data={"changed": changed})
    return locked


def _set_fields(
    locked: Any, fields: dict[str, Any], allowed: Iterable[str], refusal: str
) -> dict[str, Any]:
    """Set ``fields`` (each one of ``allowed``) on the row-locked ``locked``, validate and save
    it; returns what changed, for the audit event (secrets as ``***``, URL credentials
    redacted)."""
    changed: dict[str, Any] = {}
    for key, value in fields.items():
        if key not in allowed:
            raise Invalid(errors={key: refusal})
        old = getattr(locked, key)
        if key == "repository_url":  # write-only credentials: the redacted form keeps them
            value = keep_if_redacted(value, old)
        if old != value:
            changed[key] = _audited(key, value)
            setattr(locked, key, value)
    _full_clean(locked)
    locked.save()
    return changed


def _audited(key: str, value: Any) -> Any:
    """A changed value as the audit log keeps it: secrets never, URL credentials redacted."""
    if key in SECRET_FIELDS:
        return "***"
    if key == "repository_url":
        return redact_credentials(value)
    return _jsonable(value)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "_meta"):
        return getattr(value, "slug", str(value))
    return value
