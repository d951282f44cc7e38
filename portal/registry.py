"""The registry: what the apps above the base contribute to it, filled from ``AppConfig.ready()``.

The base layer (``portal``) and the catalog (``squads``) never import the apps above them;
those apps register here instead (NetBox's registry): home-board sections, service and squad
panels, scorecard rules and what they read, catalog list columns, beat entries, navigation,
URL includes, Prometheus collectors, DORA deployment sources, pipeline step kinds, demo data
and the catalog's membership lookup. Pages and tasks read the collections; the order of registration
is the order of ``INSTALLED_APPS`` unless an entry carries an ``order``.

Event types and outbound senders are registered in ``portal.events`` / ``portal.outbound``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

PanelKind = Literal["service", "squad"]


@dataclass(frozen=True)
class ScorecardRule:
    """One rule: ``check(service, ctx) -> bool | None`` (None: the rule does not apply)."""

    key: str
    label: str
    level: str
    check: Callable[[Any, dict], bool | None]
    help: str = ""


@dataclass(frozen=True)
class ScorecardSource:
    """An app's scorecard rules; ``load(service_ids)`` is handed to the checks as
    ``ctx[key]``; ``inputs`` names the models (label -> fields read, None: all) whose changes
    re-stitch the services they belong to (``squads.stitch``) and refresh cached catalog rows.
    A model with a ``service`` foreign key or a ``services`` many-to-many field is mapped to
    its services by itself; ``affects`` (label -> ``fn(pks) -> service ids``) maps the others
    ("this write affects service X"). ``rows`` (label -> a ``Q``) narrows an input to the rows
    ``load`` can see at all (say, finished runs and runs with a spec): a write to a row outside
    it both before and after (a run going from queued to running) re-stitches nothing."""

    key: str
    rules: tuple[ScorecardRule, ...]
    load: Callable[[list[int]], Any] | None = None
    inputs: dict[str, set[str] | None] = field(default_factory=dict)
    order: int = 100  # rules are listed by source order, then as given
    affects: dict[str, Callable[[list[int]], Iterable[int]]] = field(default_factory=dict)
    rows: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CatalogColumn:
    """A per-service fact shown in the catalog list: ``load(service_ids)`` (one query) is
    passed to the template as ``extra[key]``, read live for each page (no stored read form
    holds it); ``inputs`` refresh cached catalog rows when they change."""

    key: str
    load: Callable[[list[int]], Any]
    inputs: dict[str, set[str] | None] = field(default_factory=dict)
    affects: dict[str, Callable[[list[int]], Iterable[int]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Panel:
    template: str
    order: int = 100


@dataclass(frozen=True)
class NavItem:
    label: str
    url_name: str
    section: str
    order: int = 100
    admin_only: bool = False  # shown to org admins only


@dataclass(frozen=True)
class UrlInclude:
    """``module``'s ``urlpatterns`` are included at the site root; ``api`` at ``/api/v1/``."""

    module: str | None = None
    api: str | None = None


@dataclass(frozen=True)
class DeploymentSource:
    """``load(services, start, end)`` returns deployments as tuples
    ``(service_id, deployed_at, commit_at, failed, ref)``; DORA uses the source of highest
    ``priority`` that has any in the window."""

    name: str
    load: Callable[[list, Any, Any], list[tuple]]
    priority: int = 0


@dataclass
class LeanRoute:
    """A read the lean path (``portal.leanpath``) answers before Django: GETs whose path
    matches ``pattern``; ``handler(request, match)`` returns the JSON body (bytes), or None or
    raises ``portal.leanpath.Declined`` for Django to answer. ``allow`` is the DRF view's
    ``Allow`` header."""

    pattern: re.Pattern[str]
    handler: Callable[[Any, re.Match[str]], bytes | None]
    allow: str
    view_name: str = field(default="", init=False)  # resolved once, for the request metrics


class Registry:
    def __init__(self):
        self.clear()

    def clear(self):
        self.board_sections: list[Callable[[Any], dict | None]] = []
        self.home_context: list[Callable[[Any], dict]] = []
        self.panels: dict[str, list[Panel]] = {"service": [], "squad": []}
        self.scorecards: list[ScorecardSource] = []
        self.catalog_columns: list[CatalogColumn] = []
        self.beat: dict[str, dict] = {}
        self.nav: list[NavItem] = []
        self.nav_sections: dict[str, str] = {}
        self.urls: list[UrlInclude] = []
        self.collectors: list[Callable[[], Iterable[Any]]] = []
        self.deployment_sources: list[DeploymentSource] = []
        self.step_kinds: dict[str, Callable[..., Any]] = {}
        self.member_squads: Callable[[int], Iterable[int]] | None = None
        self.demo_seeds: list[tuple[int, str]] = []
        self.startup_checks: list[Callable[[], list[str]]] = []
        self.chart_marks: list[Callable[[Any, float, float], Iterable[tuple[float, str]]]] = []
        self.lean_routes: list[LeanRoute] = []


registry = Registry()


def board_section(fn: Callable[[Any], dict | None]) -> Callable[[Any], dict | None]:
    """``fn(request) -> {"template": ..., "order": int, ...context} | None`` on the home page."""
    registry.board_sections.append(fn)
    return fn


def home_context(fn: Callable[[Any], dict]) -> Callable[[Any], dict]:
    """``fn(request) -> dict`` merged into the home page's context (counts, my squads, ...)."""
    registry.home_context.append(fn)
    return fn


def panel(kind: PanelKind, template: str, order: int = 100) -> None:
    """A template included on every service (or squad) page; it loads itself over HTMX."""
    registry.panels[kind].append(Panel(template, order))
    registry.panels[kind].sort(key=lambda p: p.order)


def scorecard(source: ScorecardSource) -> None:
    registry.scorecards.append(source)
    registry.scorecards.sort(key=lambda s: s.order)


def catalog_column(column: CatalogColumn) -> None:
    registry.catalog_columns.append(column)


def beat(entries: dict[str, dict]) -> None:
    """Celery beat entries (name -> {"task": ..., "schedule": ...})."""
    registry.beat.update(entries)


def nav(
    label: str, url_name: str, section: str, order: int = 100, admin_only: bool = False
) -> None:
    registry.nav.append(NavItem(label, url_name, section, order, admin_only))
    registry.nav.sort(key=lambda n: n.order)


def nav_section(app_name: str, section: str) -> None:
    """Pages of URL namespace ``app_name`` highlight ``section`` (unless a view says otherwise)."""
    registry.nav_sections[app_name] = section


def urls(module: str | None = None, api: str | None = None) -> None:
    registry.urls.append(UrlInclude(module, api))


def collector(fn: Callable[[], Iterable[Any]]) -> Callable[[], Iterable[Any]]:
    """``fn()`` yields Prometheus metric families read from the database at scrape time."""
    registry.collectors.append(fn)
    return fn


def deployment_source(source: DeploymentSource) -> None:
    registry.deployment_sources.append(source)
    registry.deployment_sources.sort(key=lambda s: -s.priority)


def chart_marks(fn: Callable[[Any, float, float], Iterable[tuple[float, str]]]) -> None:
    """``fn(service, t0, t1)`` yields ``(unix time, label)`` marks drawn on the service's
    request-rate chart (a scale action, say)."""
    registry.chart_marks.append(fn)


def lean_route(
    pattern: str, handler: Callable[[Any, re.Match[str]], bytes | None], allow: str
) -> None:
    """A hot API read the lean path answers before Django (see ``LeanRoute``); routes are
    tried in the order registered, the first whose pattern matches the path only."""
    registry.lean_routes.append(LeanRoute(re.compile(pattern), handler, allow))


def step_kind(kind: str, run: Callable[..., Any]) -> None:
    """A pipeline step of ``kind: <kind>`` is run by ``run(run, step, spec, **callbacks)``."""
    registry.step_kinds[kind] = run


def member_squads(fn: Callable[[int], Iterable[int]]) -> None:
    """The catalog's lookup: ids of the squads a user (by id) is a member of."""
    registry.member_squads = fn


def demo_seed(module: str, order: int = 100) -> None:
    """``module.seed(stdout)`` loads the app's demo data (``manage.py seed_demo``); imported
    only when the demo is seeded."""
    registry.demo_seeds.append((order, module))
    registry.demo_seeds.sort()


def startup_check(fn: Callable[[], list[str]]) -> Callable[[], list[str]]:
    """``fn() -> [problem, ...]``: with ``BACKLINE_PRODUCTION=true`` the web server and
    ``make run`` refuse to start while any check reports a problem."""
    registry.startup_checks.append(fn)
    return fn


def startup_problems() -> list[str]:
    return [problem for check in registry.startup_checks for problem in check()]
