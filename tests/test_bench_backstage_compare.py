"""The side-by-side bench against real Backstage (issue 16 item 5), without npm: the catalog both
sides load, the Backstage config the bench writes, the questions asked of both and the verdict."""

from collections import Counter

import yaml

from tests.bench import backstage_server as bs
from tests.bench import bench_backstage_compare as cmp


def test_the_generated_organisation_has_the_issue_counts():
    from squads.backstage.generate import generate_org_entities

    ents = generate_org_entities(
        units=cmp.UNITS, teams=cmp.TEAMS, users=cmp.USERS, components=cmp.COMPONENTS
    )
    kinds = Counter(
        (e["kind"], e["spec"].get("type") if e["kind"] == "Group" else None) for e in ents
    )
    assert kinds == {
        ("Group", "business-unit"): 50,
        ("Group", "team"): 1_000,
        ("User", None): 500,
        ("Component", None): 10_000,
    }
    assert len(ents) == cmp.EXPECTED == 11_550
    comps = [e for e in ents if e["kind"] == "Component"]
    assert all(len(c["spec"]["dependsOn"]) == 2 for c in comps)
    assert all(f"component:{c['metadata']['name']}" not in c["spec"]["dependsOn"] for c in comps)


def test_backstage_config_is_yaml_with_the_bench_only_auth_flag(tmp_path):
    catalog = tmp_path / "catalog.yaml"
    path = bs.write_config(
        tmp_path,
        7007,
        "bench_x_backstage_real",
        catalog,
        {"HOST": "127.0.0.1", "PORT": "5432", "USER": "postgres", "PASSWORD": ""},
    )
    cfg = yaml.safe_load(path.read_text())
    assert cfg["backend"]["auth"] == {"dangerouslyDisableDefaultAuthPolicy": True}
    assert cfg["backend"]["listen"] == {"host": "127.0.0.1", "port": 7007}
    db = cfg["backend"]["database"]
    assert db["client"] == "pg" and "password" not in db["connection"]
    assert db["plugin"]["catalog"]["connection"]["database"] == "bench_x_backstage_real"
    assert cfg["catalog"]["locations"] == [{"type": "file", "target": str(catalog)}]
    assert {"Component", "Group", "User"} <= set(cfg["catalog"]["rules"][0]["allow"])
    # pinned, exact versions (no ranges), and only the catalog plugin is started
    assert all(v[0].isdigit() for v in bs.PACKAGES.values())
    assert bs.INDEX_JS.count("backend.add(") == 1 and "plugin-catalog-backend" in bs.INDEX_JS


def test_both_sides_are_asked_the_same_questions():
    import random

    rows = cmp.cases(random.Random(1))
    assert [r[0] for r in rows] == list(cmp.TARGETS)
    for name, bs_paths, bl_paths in rows:
        assert len(bs_paths) == len(bl_paths), name
        assert all(p.startswith("/api/catalog/") for p in bs_paths)
        assert all(p.startswith("/api/v1/services/") for p in bl_paths)
    by_name = rows[0]
    assert [p.rsplit("/", 1)[1] for p in by_name[1]] == [
        p.rstrip("/").rsplit("/", 1)[1] for p in by_name[2]
    ]


def _side(ms, rps):
    return {"ms": [ms] * 10, "rps": [rps], "load": [1.0]}


def test_a_missed_target_is_named_and_marked():
    rows = [
        (name, {"backstage": _side(10.0, 100), "backline": _side(2.0, 500)}) for name in cmp.TARGETS
    ]
    md, missed = cmp.table(rows, (100.0, 2.0, (1.0, 2.0)), {"x": "1"})
    # 5× faster: enough for by-name and the owner filter, not for the 10× targets
    assert md.count("**MISSED**") == 3 and "| first page of 20 |" in md
    assert sorted(m.split(":")[0] for m in missed) == [
        "facets (spec.type)",
        "first page of 20",
        "full-text search",
    ]
    md, missed = cmp.table(rows, (30.0, 2.0, (1.0, 2.0)), {"x": "1"})
    assert any(m.startswith("import: 15.0×") for m in missed)


def test_the_harness_figures_fail_the_run_on_a_miss_with_the_load_measured():
    from tests.bench.harness import Report

    rows = [
        (name, {"backstage": _side(10.0, 100), "backline": _side(2.0, 500)}) for name in cmp.TARGETS
    ]
    report = Report()
    cmp.add_figures(report, rows, (100.0, 2.0, (3.0, 4.0)))
    assert sorted(f.name for f in report.failed) == [
        "vs Backstage: facets (spec.type) p50 (Backline)",
        "vs Backstage: first page of 20 p50 (Backline)",
        "vs Backstage: full-text search p50 (Backline)",
    ]
    assert report.loads[0] == 4.0 and set(report.loads[1:]) == {1.0}
