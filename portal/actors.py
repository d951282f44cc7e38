"""Who is acting, through which door, and what they may do.

Every domain function in ``<app>/services.py`` takes an ``Actor``. Views, viewsets, commands,
webhooks and Celery tasks build one with the helpers below.
"""

from dataclasses import dataclass
from typing import Any

from django.utils.functional import cached_property

from portal.errors import Forbidden
from portal.models import ApiToken
from portal.registry import registry


@dataclass(frozen=True)
class Actor:
    user: Any = None  # django User or None
    token: Any = None  # portal.ApiToken or None
    door: str = "ui"
    ip: str | None = None
    system_name: str | None = None  # for beat/worker/command actions with no person
    # a system actor acting for one squad only (a verified webhook push, and the jobs it
    # started): it may act on that squad's things and nothing else, and is no org admin
    only_squad: int | None = None

    @classmethod
    def from_request(cls, request, door: str | None = None):
        token = getattr(request, "auth", None)
        if not isinstance(token, ApiToken):
            token = None
        user = request.user if getattr(request.user, "is_authenticated", False) else None
        if token is not None:
            user = None
        ip = request.META.get("REMOTE_ADDR")
        return cls(user=user, token=token, door=door or ("api" if token else "ui"), ip=ip)

    @classmethod
    def system(cls, name: str, door: str = "beat"):
        return cls(door=door, system_name=name)

    @classmethod
    def command(cls, user=None):
        return cls(user=user, door="command", system_name=None if user else "manage.py")

    @property
    def label(self) -> str:
        if self.token is not None:
            return f"token:{self.token.name}@{self.token.squad.slug}"
        if self.user is not None:
            return self.user.get_username()
        return self.system_name or "system"

    @property
    def is_system(self) -> bool:
        return self.user is None and self.token is None

    @cached_property
    def is_admin(self) -> bool:
        """Org admin: the system, a token with the ``admin`` scope, or a person with the explicit
        org admin role (Django's superuser flag). ``is_staff`` alone only opens the Django admin
        site with the model permissions granted there; it gives no Backline rights."""
        if self.is_system:
            return self.only_squad is None
        if self.token is not None:
            return "admin" in (self.token.scopes or [])
        return bool(self.user.is_active and self.user.is_superuser)

    def squad_ids(self) -> frozenset[int]:
        return self._squad_ids

    @cached_property
    def _squad_ids(self) -> frozenset[int]:
        # one query per actor, however many permission checks a request makes
        if self.token is not None:
            return frozenset({self.token.squad_id})
        if self.only_squad is not None:
            return frozenset({self.only_squad})
        lookup = registry.member_squads  # the catalog's membership lookup
        if self.user is None or lookup is None:
            return frozenset()
        return frozenset(lookup(self.user.pk))

    def can(self, scope: str, squad) -> bool:
        """May this actor perform an action needing ``scope`` on something owned by ``squad``?

        People: org admins, and members of the owning squad (scopes do not apply to people).
        Tokens: the token's squad must own it (or the token has ``admin``) and it carries ``scope``.
        """
        squad_id = getattr(squad, "pk", squad)
        if self.is_system:
            return self.only_squad is None or (squad_id is not None and squad_id == self.only_squad)
        if self.token is not None:
            if "admin" in self.token.scopes:
                return True
            return (
                scope in self.token.scopes
                and squad_id is not None
                and squad_id == self.token.squad_id
            )
        if self.is_admin:
            return True
        return squad_id is not None and squad_id in self.squad_ids()

    def require(self, scope: str, squad, what: str = "this"):
        if not self.can(scope, squad):
            if self.token is not None and scope not in self.token.scopes:
                raise Forbidden(f"The token lacks the scope '{scope}' needed for {what}.")
            raise Forbidden(f"Only members of the owning squad and org admins may do {what}.")

    def require_admin(self, what: str):
        """Org admins (an ``admin`` token, the system) only: "Only org admins may <what>."."""
        if not self.is_admin:
            raise Forbidden(f"Only org admins may {what}.")
