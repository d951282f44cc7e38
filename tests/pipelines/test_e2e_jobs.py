"""Chromium: a jobs run's graph moves live (HTMX tail, no reload) and an approval is clicked."""

import pytest

from pipelines.models import JobRun, PipelineRun
from pipelines.spec import parse
from tests.conftest import screenshot
from tests.pipelines.conftest import wait_for

SPEC = """\
jobs:
  build: {steps: [{run: make}]}
  test: {needs: [build], matrix: {py: ["3.11", "3.12", "3.13"]}, steps: [{run: make test}]}
  package: {needs: [test], steps: [{run: make dist}]}
"""


@pytest.mark.django_db(transaction=True)
def test_graph_states_update_without_reload(live_server, page, login, alice, service):
    spec = parse(SPEC)
    run = PipelineRun.objects.create(
        service=service, number=1, status="running", ref="main", spec=spec.data
    )
    for i, j in enumerate(spec.data["jobs"]):
        JobRun.objects.create(
            run=run, index=i, name=j["name"], base=j["base"], needs=j["needs"], matrix=j["matrix"]
        )
    JobRun.objects.filter(run=run, name="build").update(status="succeeded")
    JobRun.objects.filter(run=run, base="test").update(status="running")
    login(page, alice)
    page.goto(f"{live_server.url}/pipelines/runs/{run.pk}/")
    nodes = page.locator("svg.jobgraph g.jobnode")
    assert nodes.count() == 5 and page.locator("svg.jobgraph line.jobedge").count() == 6
    assert page.locator('g[data-job="build"]').get_attribute("data-status") == "succeeded"
    box = page.locator('g[data-job="package"]').bounding_box()
    first = page.locator('g[data-job="build"]').bounding_box()
    assert box and first and box["x"] > first["x"]  # a column further right per depth
    screenshot(page, "pipelines-jobs-graph-running")
    JobRun.objects.filter(run=run, name="test (3.12)").update(status="failed")
    JobRun.objects.filter(run=run, name="package").update(status="skipped")
    wait_for(
        lambda: page.locator('g[data-job="package"]').get_attribute("data-status") == "skipped",
        30,
        what="the graph to refresh",
    )
    assert page.locator('g[data-job="test (3.12)"]').get_attribute("data-status") == "failed"
    screenshot(page, "pipelines-jobs-graph-failed")
