"""The ``AppConfig`` base of a domain app (pipelines, releases, infra, monitoring): its ``ready()``
registers, by convention, what every such app adds to the portal:

- its pages and API: ``<app>.urls`` and ``<app>.api.urls`` (or ``api_urls``);
- its navigation entries (``nav_items``) and the section its pages highlight (``section``);
- its Celery beat entries, ``<app>.schedule.BEAT_SCHEDULE``;
- its demo data, ``<app>.demo`` (``manage.py seed_demo``, in ``demo_order``);
- its home-page section, ``<app>.board.board_section``;
- its service and squad panels, ``<app>/<kind>_panel.html`` (``panels`` to name others);
- its outbound event types (``event_types``).

What only one app registers (scorecard rules, collectors, step kinds, ...) goes in ``register()``.
Subclass it as ``domain_app.DomainAppConfig``: the class imported by name into an ``apps.py``
would count as a second config of the app, and Django would pick neither.
"""

from __future__ import annotations

from importlib import import_module
from typing import ClassVar

from django.apps import AppConfig

from portal import registry
from portal.registry import PanelKind


class DomainAppConfig(AppConfig):
    # (label, URL name, nav section, order) of each navigation entry
    nav_items: ClassVar[tuple[tuple[str, str, str, int], ...]] = ()
    section: ClassVar[str] = ""  # default: the app's name
    api_urls: ClassVar[str] = ""  # default: <app>.api.urls
    demo_order: ClassVar[int] = 100
    panel_order: ClassVar[int] = 100
    # (kind, template, order); default: the service and squad panels at panel_order
    panels: ClassVar[tuple[tuple[PanelKind, str, int], ...] | None] = None
    event_types: ClassVar[dict[str, str]] = {}

    def ready(self) -> None:
        from portal.events import register_event_type  # reads portal.models: apps must be ready

        app = self.name
        registry.urls(f"{app}.urls", api=self.api_urls or f"{app}.api.urls")
        for label, url_name, section, order in self.nav_items:
            registry.nav(label, url_name, section, order=order)
        registry.nav_section(app, self.section or app)
        registry.beat(import_module(f"{app}.schedule").BEAT_SCHEDULE)
        registry.demo_seed(f"{app}.demo", order=self.demo_order)
        registry.board_section(import_module(f"{app}.board").board_section)
        kinds: tuple[PanelKind, ...] = ("service", "squad")
        panels = self.panels
        if panels is None:
            panels = tuple((k, f"{app}/{k}_panel.html", self.panel_order) for k in kinds)
        for kind, template, order in panels:
            registry.panel(kind, template, order)
        for name, description in self.event_types.items():
            register_event_type(name, description)
        self.register()

    def register(self) -> None:
        """What only this app registers (called last by ``ready()``)."""
