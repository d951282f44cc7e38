"""Creating and changing Terraform workspaces (their configuration and who may set what)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError, transaction

from infra import tfstate
from infra.models import (
    FILENAME_RE,
    Workspace,
)
from portal import audit
from portal.actors import Actor
from portal.errors import Invalid
from portal.gitref import valid_branch
from portal.gitsource import validate_remote
from portal.urlsecrets import keep_if_redacted

SCOPE = "infra:apply"
RESERVED_SLUGS = {"new", "board", "runs"}


def record(actor: Actor, action: str, target: Any, ws: Workspace, **data: Any) -> None:
    """Audit ``action`` on ``target``: the workspace ``ws`` itself, or a run or variable of it.
    The event belongs to the workspace's squad and, for a run or a variable, names the
    workspace."""
    if target is not ws:
        data = {"workspace": ws.slug, **data}
    audit.record(actor, action, target, squad=ws.owner, data=data)


# --- workspaces and variables ------------------------------------------------------------------
def validate_files(files: Any) -> None:
    if not isinstance(files, dict):
        raise Invalid(errors={"files": "must be an object of {filename: content}"})
    for name, content in files.items():
        if not FILENAME_RE.match(str(name)):
            raise Invalid(
                errors={
                    "files": f"{name!r} is not an allowed file name (letters, digits, ._-; ending .tf, .tf.json or .tfvars)"
                }
            )
        if not isinstance(content, str):
            raise Invalid(errors={"files": f"the content of {name!r} must be text"})
    if sum(len(c) for c in files.values()) > 2 * 2**20:
        raise Invalid(errors={"files": "the stored configuration is limited to 2 MiB"})


def _validate_workspace(ws: Workspace) -> None:
    if ws.backend not in Workspace.Backend.values:
        raise Invalid(errors={"backend": f"must be one of {', '.join(Workspace.Backend.values)}"})
    if ws.backend == Workspace.Backend.PG and not tfstate.pg_available():
        raise Invalid(
            errors={
                "backend": "the pg backend needs PostgreSQL: Backline runs on SQLite and "
                "INFRA_STATE_DATABASE_URL is not set (use local)"
            }
        )
    if ws.source == Workspace.Source.STORED:
        validate_files(ws.files)
    else:
        if not ws.repository_url.strip():
            raise Invalid(errors={"repository_url": "a git workspace needs a repository URL"})
        if ws.repository_url.strip().startswith("-"):
            raise Invalid(errors={"repository_url": "not a repository URL"})
        validate_remote(ws.repository_url)  # the outbound URL guard: a 400 naming the field
        if not valid_branch(ws.ref or ""):  # git's own rules (portal.gitref)
            raise Invalid(errors={"ref": f"{ws.ref!r} is not a valid branch or tag name"})
        parts = [p for p in (ws.path or "").split("/") if p]
        if ws.path.startswith("/") or ".." in parts:
            raise Invalid(errors={"path": "must be a relative path inside the repository"})


WORKSPACE_FIELDS = (
    "name",
    "description",
    "source",
    "files",
    "repository_url",
    "ref",
    "path",
    "terraform_bin",
    "backend",
    "allow_provisioners",
    "auto_apply",
    "drift_checks",
    "drift_interval_minutes",
)


def _require_admin_for_sandbox_fields(actor: Actor, ws: Workspace | None, fields: dict) -> None:
    """Where state lives and whether provisioners run are the installation's business: a
    backend from the code (which could name another workspace's state) and local-exec /
    remote-exec provisioners are org admin decisions."""
    backend = fields.get("backend")
    if backend == Workspace.Backend.CONFIGURED and (ws is None or ws.backend != backend):
        actor.require_admin("let a workspace's code configure its Terraform backend")
    allow = fields.get("allow_provisioners")
    if allow is not None and allow != (ws.allow_provisioners if ws is not None else False):
        actor.require_admin("allow local-exec/remote-exec provisioners for a workspace")


def _check_linked_services(owner: Any, services: Iterable[Any]) -> None:
    """A workspace links only services its owner squad owns: the link feeds those services'
    drift rule and pages, so another squad's service would be reported on by this one."""
    foreign = sorted(s.slug for s in services if s.owner_id != getattr(owner, "pk", owner))
    if foreign:
        raise Invalid(
            errors={
                "services": f"{', '.join(foreign)} {'is' if len(foreign) == 1 else 'are'} not "
                f"owned by the workspace's squad {owner.slug!r}; a workspace links only its own "
                "squad's services"
            }
        )


def create_workspace(
    owner: Any, *, actor: Actor, slug: str, services: Iterable[Any] = (), **fields: Any
) -> Workspace:
    actor.require(SCOPE, owner, "creating a Terraform workspace for this squad")
    if slug in RESERVED_SLUGS:
        raise Invalid(errors={"slug": f"{slug!r} is reserved; choose another slug"})
    if fields.get("terraform_bin"):
        actor.require_admin("choose the terraform binary of a workspace")
    _require_admin_for_sandbox_fields(actor, None, fields)
    services = list(services)
    _check_linked_services(owner, services)
    ws = Workspace(slug=slug, owner=owner, **{k: v for k, v in fields.items() if v is not None})
    _validate_workspace(ws)
    try:
        with transaction.atomic():
            ws.save()
            if services:
                ws.services.set(services)
            services_slugs = [s.slug for s in services]
            record(
                actor, "infra.workspace.create", ws, ws, source=ws.source, services=services_slugs
            )
    except IntegrityError as exc:
        raise Invalid(errors={"slug": f"a workspace with slug {slug!r} already exists"}) from exc
    return ws


def update_workspace(
    ws: Workspace,
    *,
    actor: Actor,
    services: Iterable[Any] | None = None,
    owner: Any = None,
    **fields: Any,
) -> Workspace:
    actor.require(SCOPE, ws.owner, "changing this workspace")
    if owner is not None and owner != ws.owner:
        actor.require(SCOPE, owner, "moving the workspace to that squad")
    if fields.get("terraform_bin"):
        actor.require_admin("choose the terraform binary of a workspace")
    _require_admin_for_sandbox_fields(actor, ws, fields)
    with transaction.atomic():
        ws = Workspace.objects.select_for_update(no_key=True).get(pk=ws.pk)
        changed: list[str] = []
        for key, value in fields.items():
            if key == "repository_url":  # write-only credentials: the redacted form keeps them
                value = keep_if_redacted(value, ws.repository_url)
            if key in WORKSPACE_FIELDS and value is not None and getattr(ws, key) != value:
                setattr(ws, key, value)
                changed.append(key)
        if owner is not None and owner != ws.owner:
            ws.owner = owner
            changed.append("owner")
        _validate_workspace(ws)
        if services is not None:
            services = list(services)
        if services is not None or "owner" in changed:
            _check_linked_services(ws.owner, ws.services.all() if services is None else services)
        ws.save()
        if services is not None:
            ws.services.set(services)
            changed.append("services")
        record(actor, "infra.workspace.update", ws, ws, changed=changed)
    return ws
