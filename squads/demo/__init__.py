"""The demo organisation loaded by ``python manage.py seed_demo``: a music-streaming company
organised in autonomous squads, as in the case study (shared/seed/spotify-devops-case-study.md).

Plain tables only; ``squads/management/commands/seed_demo.py`` writes them through the ORM.
Slugs here are stable: other apps' demo seeds (pipelines, monitoring, infra) refer to them.
One module a part: ``org`` (tribes, domains, squads, people, sign-ins, systems), the services of
each tribe (``services_*``), ``apis``, ``resources`` (and the dependencies).
"""

from . import services_audio, services_discovery, services_platform
from .apis import APIS, CONSUMES
from .org import (
    CHAT,
    DASHBOARDS,
    DOMAINS,
    GIT,
    LEAD,
    LOGINS,
    MEMBER,
    PEOPLE,
    PO,
    RUNBOOKS,
    SQUADS,
    SYSTEMS,
    TRIBES,
    D,
    P,
    X,
)
from .resources import DEPENDS_ON, RESOURCES, USES

SERVICES = [*services_audio.SERVICES, *services_discovery.SERVICES, *services_platform.SERVICES]

__all__ = [
    "APIS",
    "CHAT",
    "CONSUMES",
    "DASHBOARDS",
    "DEPENDS_ON",
    "DOMAINS",
    "GIT",
    "LEAD",
    "LOGINS",
    "MEMBER",
    "PEOPLE",
    "PO",
    "RESOURCES",
    "RUNBOOKS",
    "SERVICES",
    "SQUADS",
    "SYSTEMS",
    "TRIBES",
    "USES",
    "D",
    "P",
    "X",
]
