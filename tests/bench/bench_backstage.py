"""Backstage import of 10,000 generated entities with relations (target < 20 s on PostgreSQL),
next to the baseline of only parsing the same YAML. Runs in a throwaway database."""

import time

import yaml
from django.conf import settings
from django.db import connection

BENCH_DB = "bench_backline_backstage"
TOTAL = 10_000


def _timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def run(report):
    from portal.actors import Actor
    from squads.backstage import import_catalog
    from squads.backstage.generate import generate_catalog
    from squads.backstage.importer import YamlLoader

    text = generate_catalog(TOTAL)
    parse_s, docs = _timed(lambda: list(yaml.load_all(text, Loader=YamlLoader)))
    assert len(docs) == TOTAL
    test_settings = settings.DATABASES["default"].setdefault("TEST", {})
    old_name, old_test_name = connection.settings_dict["NAME"], test_settings.get("NAME")
    test_settings["NAME"] = BENCH_DB
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False, serialize=False)
    try:
        actor = Actor.system("bench", door="command")
        first_s, first = _timed(lambda: import_catalog([("generated.yaml", text)], actor))
        assert first.created == TOTAL, first.summary
        again_s, again = _timed(lambda: import_catalog([("generated.yaml", text)], actor))
        assert again.unchanged == TOTAL, again.summary
        one = (
            "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: one-more}\n"
            "spec: {type: service, lifecycle: production, owner: squad-1,"
            " dependsOn: [component:component-5]}\n"
        )
        one_parse_s, _ = _timed(lambda: list(yaml.load_all(one, Loader=YamlLoader)))
        one_s, one_report = _timed(lambda: import_catalog([("one.yaml", one)], actor))
        assert one_report.created == 1, one_report.summary
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0, keepdb=False)
        if old_test_name is None:
            test_settings.pop("NAME", None)
        else:
            test_settings["NAME"] = old_test_name
    report.add(
        f"backstage import of {TOTAL:,} entities with relations (empty catalog)",
        first_s,
        "s",
        baseline=parse_s,
        baseline_label="parse the same YAML only",
        target="< 20 s",
        ok=first_s < 20,
    )
    report.add(
        f"backstage re-import of the same {TOTAL:,} entities (all unchanged)",
        again_s,
        "s",
        baseline=parse_s,
        baseline_label="parse the same YAML only",
        target="< 20 s",
        ok=again_s < 20,
    )
    report.add(
        f"backstage import of 1 component into the {TOTAL:,}-entity catalog",
        one_s * 1000,
        "ms",
        baseline=one_parse_s * 1000,
        baseline_label="parse its YAML only",
        target="< 500 ms",
        ok=one_s < 0.5,
    )
