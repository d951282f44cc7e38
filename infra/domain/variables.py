"""A workspace's Terraform and environment variables."""

from __future__ import annotations

import json
from typing import Any

from django.db import transaction

from infra.domain.workspaces import SCOPE, record
from infra.models import (
    ENV_KEY_RE,
    RESERVED_ENV,
    VAR_KEY_RE,
    Variable,
    Workspace,
)
from portal.actors import Actor
from portal.errors import Invalid


def set_variable(
    ws: Workspace,
    *,
    actor: Actor,
    key: str,
    value: Any,
    category: str = "terraform",
    sensitive: bool = False,
    description: str = "",
) -> Variable:
    actor.require(SCOPE, ws.owner, "changing this workspace's variables")
    key = (key or "").strip()
    if category not in Variable.Category.values:
        raise Invalid(errors={"category": f"must be one of {', '.join(Variable.Category.values)}"})
    pattern = ENV_KEY_RE if category == "env" else VAR_KEY_RE
    if not pattern.match(key):
        raise Invalid(errors={"key": f"{key!r} is not a valid {category} variable name"})
    if category == "env" and (key in RESERVED_ENV or key.startswith("TF_VAR_")):
        raise Invalid(
            errors={"key": f"{key} is set by Backline (use a Terraform variable for TF_VAR_*)"}
        )
    if not isinstance(value, str):
        value = json.dumps(value) if not isinstance(value, (int, float)) else str(value)
    with transaction.atomic():
        var = (
            Variable.objects.select_for_update(no_key=True)
            .filter(workspace=ws, key=key, category=category)
            .first()
        )
        created = var is None
        if var is None:
            var = Variable(workspace=ws, key=key, category=category)
        elif var.sensitive and not sensitive:
            raise Invalid(
                errors={
                    "sensitive": f"{key} is sensitive; a sensitive variable cannot be made plain"
                }
            )
        var.value = value
        var.sensitive = bool(sensitive)
        var.description = description or var.description
        var.save()
        action = "infra.variable.create" if created else "infra.variable.update"
        record(actor, action, var, ws, key=key, category=category, sensitive=var.sensitive)
    return var


def delete_variable(var: Variable, *, actor: Actor) -> None:
    ws = var.workspace
    actor.require(SCOPE, ws.owner, "changing this workspace's variables")
    with transaction.atomic():
        record(actor, "infra.variable.delete", var, ws, key=var.key, category=var.category)
        var.delete()
