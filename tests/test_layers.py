"""The layers (import-linter contract) and the registry the higher apps fill from ready()."""

import re
import subprocess
import sys
from pathlib import Path

from portal.registry import registry

ROOT = Path(__file__).resolve().parent.parent
APPS = ("portal", "squads", "metrics", "pipelines", "infra", "monitoring", "releases")


def test_layers_contract_is_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout


def test_no_app_swallows_import_errors():
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for app in APPS
        for path in (ROOT / app).rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"except\s*\(?\s*(ImportError|ModuleNotFoundError)", line)
    ]
    assert not found, found


def test_navigation_comes_from_every_app_in_order():
    assert [n.label for n in registry.nav] == [
        "Catalog",
        "Squads",
        "Pipelines",
        "Releases",
        "Infrastructure",
        "Dashboards",
        "Alerts",
        "Directory sync",  # org admins only (identity, issue 15)
    ]


def test_panels_sections_and_scorecards_are_registered():
    assert [p.template for p in registry.panels["service"]] == [
        "pipelines/releases/service_panel.html",
        "releases/runtime_panel.html",
        "pipelines/service_panel.html",
        "monitoring/service_panel.html",
        "infra/service_panel.html",
    ]
    assert [p.template for p in registry.panels["squad"]] == [
        "pipelines/squad_panel.html",
        "monitoring/squad_panel.html",
        "infra/squad_panel.html",
    ]
    assert len(registry.board_sections) == 4
    assert [s.key for s in registry.scorecards] == ["pipelines", "releases", "monitoring", "infra"]
    assert [c.key for c in registry.catalog_columns] == ["last_runs"]


def test_beat_and_sources_of_every_app():
    tasks = {entry["task"].split(".")[0] for entry in registry.beat.values()}
    assert tasks == {"portal", "squads", "pipelines", "infra", "monitoring", "releases"}
    assert [s.name for s in registry.deployment_sources] == ["releases", "pipeline_runs"]
    assert set(registry.step_kinds) == {"release", "approval", "jenkins"}  # issue 18: pipelines
    assert [f.__name__ for f in registry.collectors] == [
        "pipeline_families",
        "monitoring_families",
        "release_families",
    ]
    assert registry.member_squads is not None
    assert [u.module for u in registry.urls] == [
        "squads.urls",
        "identity.urls",
        "identity.scim.urls",
        "pipelines.urls",
        "infra.urls",
        "monitoring.urls",
        "releases.urls",
    ]


def test_catalog_cache_watches_what_other_apps_read():
    from squads import cache

    watched = cache.inputs()
    # the "Last run" column and the pipelines scorecard both read PipelineRun: fields merged
    assert watched["pipelines.PipelineRun"] >= {"number", "commit_sha", "spec", "status"}
    assert watched["releases.Release"] == {"service", "environment", "strategy"}
    assert watched["infra.Workspace"] == {"services", "drift_status"}
