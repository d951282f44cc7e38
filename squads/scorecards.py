"""Scorecards: rules over catalog facts, grouped into levels bronze / silver / gold.

A service reaches a level when it passes every rule of that level and of all lower levels.
Rules are evaluated in bulk: ``evaluate(services)`` loads what every rule needs in a fixed
number of queries (whatever the number of services), then checks each service in Python.

Other apps contribute rules from their ``AppConfig.ready()`` with ``register(ScorecardSource(
key, rules, load, inputs))`` (``portal.registry``): ``load(service_ids) -> dict`` is passed to
their checks as ``ctx[key]``, and ``inputs`` (model label -> fields read) refresh cached
catalog rows when they change.
"""

from dataclasses import dataclass

from portal.lookups import many
from portal.registry import ScorecardRule, ScorecardSource, registry
from portal.registry import scorecard as _register
from squads import cache
from squads.models import Dependency, Membership

LEVELS = ("bronze", "silver", "gold")
Rule = ScorecardRule


def register(source: ScorecardSource) -> None:
    """Add an app's rules (from its ``AppConfig.ready()``) and watch what they read."""
    from squads import stitch  # stitch reads the rules: imported once both exist

    _register(source)
    cache.watch_inputs(source.inputs)
    stitch.connect(source.inputs)


@dataclass
class RuleResult:
    rule: Rule
    passed: bool | None


@dataclass
class Scorecard:
    results: list
    level: str | None

    @property
    def passed(self):
        return sum(1 for r in self.results if r.passed)

    @property
    def applicable(self):
        return sum(1 for r in self.results if r.passed is not None)

    @property
    def percent(self):
        return round(100 * self.passed / self.applicable) if self.applicable else 100

    def as_dict(self):
        return {
            "level": self.level,
            "passed": self.passed,
            "applicable": self.applicable,
            "percent": self.percent,
            "rules": [
                {
                    "key": r.rule.key,
                    "label": r.rule.label,
                    "level": r.rule.level,
                    "passed": r.passed,
                }
                for r in self.results
            ],
        }


def _catalog_ctx(services):
    """Leads per squad and deprecated dependencies per service: two queries in all."""
    squad_ids = {s.owner_id for s in services if s.owner_id}
    leads = set(
        Membership.objects.filter(squad_id__any=list(squad_ids), role=Membership.Role.LEAD)
        .order_by()
        .values_list("squad_id", flat=True)
    )
    ids = [s.pk for s in services]
    deprecated = set(
        Dependency.objects.filter(source_id__any=many(ids), target_service__lifecycle="deprecated")
        .order_by()
        .values_list("source_id", flat=True)
    )
    return {"leads": leads, "deprecated_deps": deprecated}


def _tier1(check):
    return lambda s, ctx: check(s, ctx) if s.tier == 1 else None


CATALOG_RULES = [
    Rule("has_owner", "Has an owning squad", "bronze", lambda s, ctx: s.owner_id is not None),
    Rule(
        "has_description", "Has a description", "bronze", lambda s, ctx: bool(s.description.strip())
    ),
    Rule("has_repo", "Has a repository URL", "bronze", lambda s, ctx: bool(s.repository_url)),
    Rule("has_runbook", "Has a runbook", "silver", lambda s, ctx: bool(s.runbook_url)),
    Rule("has_oncall", "Has an on-call contact", "silver", lambda s, ctx: bool(s.oncall)),
    Rule(
        "tier1_lead",
        "Tier-1: owning squad has a lead",
        "silver",
        _tier1(lambda s, ctx: s.owner_id in ctx["catalog"]["leads"]),
    ),
    Rule(
        "tier1_oncall",
        "Tier-1: has an on-call contact",
        "silver",
        _tier1(lambda s, ctx: bool(s.oncall)),
    ),
    Rule(
        "deps_not_deprecated",
        "Depends on no deprecated service",
        "gold",
        lambda s, ctx: s.pk not in ctx["catalog"]["deprecated_deps"],
    ),
]


def all_rules():
    rules = list(CATALOG_RULES)
    for source in registry.scorecards:
        rules.extend(source.rules)
    return rules


def evaluate(services) -> dict:
    """Return {service.pk: Scorecard} for an iterable of services, in constant queries."""
    services = list(services)
    if not services:
        return {}
    ctx = {"catalog": _catalog_ctx(services)}
    ids = [s.pk for s in services]
    for source in registry.scorecards:
        if source.load is not None:
            ctx[source.key] = source.load(ids)
    rules = _ordered_rules()
    return {s.pk: _card([RuleResult(rule, rule.check(s, ctx)) for rule in rules]) for s in services}


def _ordered_rules():
    return sorted(all_rules(), key=lambda r: LEVELS.index(r.level))


def _card(results) -> Scorecard:
    level = None
    for lvl in LEVELS:
        if all(r.passed is not False for r in results if r.rule.level == lvl):
            level = lvl
        else:
            break
    return Scorecard(results=results, level=level)


def reevaluate(services, stored: dict, keys) -> dict | None:
    """{service.pk: Scorecard} with only the rules of the sources ``keys`` checked again (their
    ``load`` run for these services) and the other rules' results taken from ``stored``
    (service id -> its stored scorecard document): after a write to an input of those sources
    alone. None when a stored document does not list exactly the rules registered now, or a
    rule reads another source's facts: evaluate them all then."""
    services = list(services)
    sources = [src for src in registry.scorecards if src.key in keys]
    ids = [s.pk for s in services]
    ctx = {src.key: src.load(ids) for src in sources if src.load is not None}
    fresh = {rule.key for src in sources for rule in src.rules}
    rules = _ordered_rules()
    cards = {}
    for s in services:
        old = {r["key"]: r["passed"] for r in (stored.get(s.pk) or {}).get("rules", ())}
        if set(old) != {rule.key for rule in rules}:
            return None
        try:
            results = [
                RuleResult(rule, rule.check(s, ctx) if rule.key in fresh else old[rule.key])
                for rule in rules
            ]
        except KeyError:  # a check reading another source's ctx
            return None
        cards[s.pk] = _card(results)
    return cards


def evaluate_one(service) -> Scorecard:
    return evaluate([service])[service.pk]


def rollup(cards) -> dict:
    """Squad roll-up: how many services at each level, and the share of rules passed."""
    counts = {lvl: 0 for lvl in (*LEVELS, None)}
    passed = applicable = 0
    for card in cards:
        counts[card.level] += 1
        passed += card.passed
        applicable += card.applicable
    return {
        "levels": {
            "gold": counts["gold"],
            "silver": counts["silver"],
            "bronze": counts["bronze"],
            "none": counts[None],
        },
        "percent": round(100 * passed / applicable) if applicable else 100,
        "services": sum(counts.values()),
    }
