"""Generate big, valid Backstage catalogs (benchmarks, load tests, demos)."""

import random

import yaml

from .exporter import _Dumper

API_VERSION = "backstage.io/v1alpha1"
LIFECYCLES = ("experimental", "production", "deprecated")


def generate_entities(total: int = 10_000, *, seed: int = 1) -> list[dict]:
    """About ``total`` entities with relations: tribes → squads → users (memberOf), domains,
    systems, APIs, resources and components (owner, system, dependsOn, providesApis,
    consumesApis, tags, links, annotations)."""
    rnd = random.Random(seed)
    n_tribes = max(2, total // 1000)
    n_squads = max(4, total // 100)
    n_users = total // 5
    n_domains = max(2, total // 500)
    n_systems = max(4, total // 50)
    n_apis = total // 8
    n_resources = total // 10
    n_components = total - (
        n_tribes + n_squads + n_users + n_domains + n_systems + n_apis + n_resources
    )
    tribes = [f"tribe-{i}" for i in range(n_tribes)]
    squads = [f"squad-{i}" for i in range(n_squads)]
    systems = [f"system-{i}" for i in range(n_systems)]
    apis = [f"api-{i}" for i in range(n_apis)]
    resources = [f"resource-{i}" for i in range(n_resources)]
    components = [f"component-{i}" for i in range(n_components)]
    out = []

    def ent(kind, name, spec, **meta):
        return {
            "apiVersion": API_VERSION,
            "kind": kind,
            "metadata": {"name": name, **meta},
            "spec": spec,
        }

    for i, t in enumerate(tribes):
        spec = {"type": "tribe" if i else "organization", "children": []}
        if i:
            spec["parent"] = tribes[0]
        out.append(ent("Group", t, spec, description=f"Tribe {i}"))
    for i, s in enumerate(squads):
        out.append(
            ent(
                "Group",
                s,
                {
                    "type": "team",
                    "parent": tribes[i % n_tribes],
                    "profile": {"displayName": f"Squad {i}", "email": f"{s}@example.com"},
                    "children": [],
                },
            )
        )
    for i in range(n_users):
        out.append(
            ent(
                "User",
                f"user-{i}",
                {
                    "profile": {"displayName": f"User {i}", "email": f"user-{i}@example.com"},
                    "memberOf": sorted({squads[i % n_squads], rnd.choice(squads)}),
                },
            )
        )
    for i in range(n_domains):
        out.append(
            ent("Domain", f"domain-{i}", {"owner": tribes[i % n_tribes]}, description=f"Domain {i}")
        )
    for i, s in enumerate(systems):
        out.append(
            ent("System", s, {"owner": squads[i % n_squads], "domain": f"domain-{i % n_domains}"})
        )
    for i, a in enumerate(apis):
        out.append(
            ent(
                "API",
                a,
                {
                    "type": "openapi",
                    "lifecycle": rnd.choice(LIFECYCLES),
                    "owner": squads[i % n_squads],
                    "system": systems[i % n_systems],
                    "definition": f"openapi: 3.0.0\ninfo: {{title: {a}, version: 1.0.0}}\npaths: {{}}\n",
                },
                tags=["rest"],
            )
        )
    for i, r in enumerate(resources):
        out.append(
            ent(
                "Resource",
                r,
                {
                    "type": rnd.choice(("database", "queue", "bucket")),
                    "owner": squads[i % n_squads],
                    "system": systems[i % n_systems],
                },
            )
        )
    for i, c in enumerate(components):
        deps = {f"component:{components[j]}" for j in rnd.sample(range(n_components), 3) if j != i}
        deps.add(f"resource:{rnd.choice(resources)}")
        out.append(
            ent(
                "Component",
                c,
                {
                    "type": rnd.choice(("service", "website", "library")),
                    "lifecycle": rnd.choice(LIFECYCLES),
                    "owner": squads[i % n_squads],
                    "system": systems[i % n_systems],
                    "dependsOn": sorted(deps),
                    "providesApis": [apis[i % n_apis]],
                    "consumesApis": sorted({rnd.choice(apis), rnd.choice(apis)}),
                },
                description=f"Component {i}",
                tags=sorted({rnd.choice(("go", "java", "python", "rust")), "generated"}),
                links=[{"url": f"https://example.com/{c}", "title": "Home"}],
                annotations={
                    "backline.io/tier": str(rnd.randint(1, 3)),
                    "github.com/project-slug": f"acme/{c}",
                },
            )
        )
    return out


def generate_catalog(total: int = 10_000, *, seed: int = 1) -> str:
    """``generate_entities`` as multi-document YAML."""
    return yaml.dump_all(
        generate_entities(total, seed=seed), Dumper=_Dumper, sort_keys=False, width=100
    )
