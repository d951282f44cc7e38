"""Generate big, valid Backstage catalogs (benchmarks, load tests, demos)."""

import random

import yaml

from .exporter import _Dumper

API_VERSION = "backstage.io/v1alpha1"
LIFECYCLES = ("experimental", "production", "deprecated")


def _counts(total):
    """How many entities of each kind make about ``total``."""
    n = {
        "tribe": max(2, total // 1000),
        "squad": max(4, total // 100),
        "user": total // 5,
        "domain": max(2, total // 500),
        "system": max(4, total // 50),
        "api": total // 8,
        "resource": total // 10,
    }
    n["component"] = total - sum(n.values())
    return n


def _ent(kind, name, spec, **meta):
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": name, **meta},
        "spec": spec,
    }


def _groups(names):
    tribes, squads = names["tribe"], names["squad"]
    out = []
    for i, t in enumerate(tribes):
        spec = {"type": "tribe" if i else "organization", "children": []}
        if i:
            spec["parent"] = tribes[0]
        out.append(_ent("Group", t, spec, description=f"Tribe {i}"))
    for i, s in enumerate(squads):
        profile = {"displayName": f"Squad {i}", "email": f"{s}@example.com"}
        spec = {"type": "team", "parent": tribes[i % len(tribes)], "profile": profile}
        out.append(_ent("Group", s, {**spec, "children": []}))
    return out


def _users(rnd, names):
    squads = names["squad"]
    return [
        _ent(
            "User",
            u,
            {
                "profile": {"displayName": f"User {i}", "email": f"{u}@example.com"},
                "memberOf": sorted({squads[i % len(squads)], rnd.choice(squads)}),
            },
        )
        for i, u in enumerate(names["user"])
    ]


def _domains_and_systems(names):
    tribes, squads, domains = names["tribe"], names["squad"], names["domain"]
    out = [
        _ent("Domain", d, {"owner": tribes[i % len(tribes)]}, description=f"Domain {i}")
        for i, d in enumerate(domains)
    ]
    for i, s in enumerate(names["system"]):
        spec = {"owner": squads[i % len(squads)], "domain": domains[i % len(domains)]}
        out.append(_ent("System", s, spec))
    return out


def _owned_by(names, i):
    """The owner and system of the ``i``-th entity of a kind."""
    squads, systems = names["squad"], names["system"]
    return {"owner": squads[i % len(squads)], "system": systems[i % len(systems)]}


def _apis(rnd, names):
    out = []
    for i, a in enumerate(names["api"]):
        lifecycle = rnd.choice(LIFECYCLES)
        spec = {"type": "openapi", "lifecycle": lifecycle, **_owned_by(names, i)}
        spec["definition"] = f"openapi: 3.0.0\ninfo: {{title: {a}, version: 1.0.0}}\npaths: {{}}\n"
        out.append(_ent("API", a, spec, tags=["rest"]))
    return out


def _resources(rnd, names):
    return [
        _ent(
            "Resource",
            r,
            {"type": rnd.choice(("database", "queue", "bucket")), **_owned_by(names, i)},
        )
        for i, r in enumerate(names["resource"])
    ]


def _component(rnd, names, i, c):
    components, apis = names["component"], names["api"]
    deps = {f"component:{components[j]}" for j in rnd.sample(range(len(components)), 3) if j != i}
    deps.add(f"resource:{rnd.choice(names['resource'])}")
    spec = {
        "type": rnd.choice(("service", "website", "library")),
        "lifecycle": rnd.choice(LIFECYCLES),
        **_owned_by(names, i),
        "dependsOn": sorted(deps),
        "providesApis": [apis[i % len(apis)]],
        "consumesApis": sorted({rnd.choice(apis), rnd.choice(apis)}),
    }
    return _ent(
        "Component",
        c,
        spec,
        description=f"Component {i}",
        tags=sorted({rnd.choice(("go", "java", "python", "rust")), "generated"}),
        links=[{"url": f"https://example.com/{c}", "title": "Home"}],
        annotations={
            "backline.io/tier": str(rnd.randint(1, 3)),
            "github.com/project-slug": f"acme/{c}",
        },
    )


def generate_entities(total: int = 10_000, *, seed: int = 1) -> list[dict]:
    """About ``total`` entities with relations: tribes → squads → users (memberOf), domains,
    systems, APIs, resources and components (owner, system, dependsOn, providesApis,
    consumesApis, tags, links, annotations)."""
    rnd = random.Random(seed)
    names = {kind: [f"{kind}-{i}" for i in range(n)] for kind, n in _counts(total).items()}
    return [
        *_groups(names),
        *_users(rnd, names),
        *_domains_and_systems(names),
        *_apis(rnd, names),
        *_resources(rnd, names),
        *(_component(rnd, names, i, c) for i, c in enumerate(names["component"])),
    ]


def generate_catalog(total: int = 10_000, *, seed: int = 1) -> str:
    """``generate_entities`` as multi-document YAML."""
    return yaml.dump_all(
        generate_entities(total, seed=seed), Dumper=_Dumper, sort_keys=False, width=100
    )


def generate_org_entities(
    *,
    units: int = 50,
    teams: int = 1_000,
    users: int = 500,
    components: int = 10_000,
    seed: int = 1,
) -> list[dict]:
    """An organisation as the Backstage comparison loads it (issue 16): ``units`` business-unit
    Groups, ``teams`` team Groups under them, ``users`` Users (member of one or two teams) and
    ``components`` Components, each owned by a team with two ``dependsOn`` on other components
    (11,550 entities by default)."""
    rnd = random.Random(seed)
    unit_names = [f"unit-{i}" for i in range(units)]
    team_names = [f"team-{i}" for i in range(teams)]
    comp_names = [f"component-{i}" for i in range(components)]
    out = [
        _ent("Group", u, {"type": "business-unit", "children": []}, description=f"Unit {i}")
        for i, u in enumerate(unit_names)
    ]
    for i, t in enumerate(team_names):
        spec = {"type": "team", "parent": unit_names[i % units], "children": []}
        out.append(_ent("Group", t, {**spec, "profile": {"displayName": f"Team {i}"}}))
    for i in range(users):
        teams_of = sorted({team_names[i % teams], rnd.choice(team_names)})
        profile = {"displayName": f"User {i}", "email": f"user-{i}@example.com"}
        out.append(_ent("User", f"user-{i}", {"profile": profile, "memberOf": teams_of}))
    for i, c in enumerate(comp_names):
        others = [j for j in rnd.sample(range(components), 3) if j != i][:2]
        spec = {
            "type": rnd.choice(("service", "website", "library")),
            "lifecycle": rnd.choice(LIFECYCLES),
            "owner": team_names[i % teams],
            "dependsOn": sorted(f"component:{comp_names[j]}" for j in others),
        }
        out.append(_ent("Component", c, spec, description=f"Component {i}", tags=["generated"]))
    return out


def generate_org_catalog(**counts) -> str:
    """``generate_org_entities`` as multi-document YAML."""
    return yaml.dump_all(
        generate_org_entities(**counts), Dumper=_Dumper, sort_keys=False, width=100
    )
