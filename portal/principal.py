"""The principal a job acts for: recorded when the job is created, rebuilt in the worker.

A job that starts another action on behalf of the one who started it (a pipeline's
``release:`` step, a Terraform auto-apply) acts with its starter's rights and, for a token, the
token's scopes, never as the system. :func:`started_by` gives the ``started_by_*`` fields of
``portal.jobs.LoggedJob`` for an :class:`~portal.actors.Actor`; :func:`actor_for` rebuilds the
actor from them at the moment of the action, so a token revoked or expired since, a user
deactivated or deleted since, acts no more:

- ``user``: the user (must still exist and be active); their squad memberships as of now.
- ``token``: the token (must still exist, not revoked, not expired); its squad and scopes.
- ``webhook``: a verified push (signed with a service's secret): the owning squad's things only.
- ``system``: beat, a command without a user, the demo seed: the system.
- nothing recorded (a job created before principals were recorded): refused.
"""

from __future__ import annotations

from typing import Any

from portal.actors import Actor
from portal.errors import Forbidden


def started_by(actor: Actor) -> dict[str, Any]:
    """The ``started_by_*`` fields recording ``actor`` on a new job."""
    if actor.token is not None:
        kind = "token"
    elif actor.user is not None:
        kind = "user"
    elif actor.door == "webhook" or actor.only_squad is not None:
        kind = "webhook"  # acts for one squad only, and so does whatever it starts
    else:
        kind = "system"
    return {
        "started_by_kind": kind,
        "started_by_name": actor.label[:200],
        "started_by_user": actor.user,
        "started_by_token": actor.token,
    }


def actor_for(job: Any, *, squad: Any, door: str) -> Actor:
    """The actor ``job`` acts as now, for an action on something ``squad`` owns.

    Raises ``Forbidden`` naming the job's starter when that principal can no longer act."""
    kind, name = job.started_by_kind, job.started_by_name or "its starter"
    squad_id = getattr(squad, "pk", squad)
    if kind == "token":
        token = _fresh(job, "started_by_token")
        if token is None:
            raise Forbidden(f"The token that started this ({name}) was deleted.")
        if token.revoked_at is not None:
            raise Forbidden(f"The token that started this ({name}) was revoked.")
        if token.is_expired:
            raise Forbidden(f"The token that started this ({name}) has expired.")
        return Actor(token=token, door=door)
    if kind == "user":
        user = _fresh(job, "started_by_user")
        if user is None or not user.is_active:
            raise Forbidden(f"The user who started this ({name}) is no longer active.")
        return Actor(user=user, door=door)
    if kind == "webhook":
        # an unowned thing: squad 0, which no row has (a webhook is never everything)
        return Actor(door=door, system_name=name, only_squad=squad_id or 0)
    if kind == "system":
        return Actor.system(name, door=door)
    raise Forbidden("This job records no principal that started it; start it again.")


def _fresh(job: Any, field: str):
    """The related row as it is now in the database (revocation must show at once)."""
    fk = getattr(job, f"{field}_id")
    if fk is None:
        return None
    model = job._meta.get_field(field).related_model
    return model._default_manager.filter(pk=fk).first()
