"""Playwright in Chromium: plan a workspace, read the summary, apply it, see `applied`."""

import pytest

from infra.models import RunStatus, TerraformRun, Workspace
from tests.conftest import screenshot
from tests.factories import ServiceFactory
from tests.infra.conftest import SECRET, published, write_state

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e, pytest.mark.worker]


def test_plan_read_summary_apply(worker_root, live_server, page, login, alice, make_workspace):
    # not under the worker's workspace root: the sandbox hides that from every run
    upstream = write_state(published("e2e-up.tfstate"), {"val": "one"})
    ws = make_workspace(slug="edge-network", upstream_path=upstream)
    login(page, alice)
    page.goto(f"{live_server.url}/infra/")
    page.click("text=Edge-Network")
    page.click("#plan-btn")
    page.wait_for_url("**/infra/runs/*/")
    # the status section polls until the plan is ready, then shows the summary and Apply
    page.wait_for_selector("#apply-btn", timeout=30000)
    assert page.inner_text("#n-add") == "0"
    outputs = page.inner_text("#output-changes")
    assert "greeting" in outputs and '"hello world"' in outputs
    assert "(sensitive value)" in outputs and SECRET not in page.content()
    assert "terraform plan" in page.inner_text("#log")
    screenshot(page, "infra-run-planned")
    page.once("dialog", lambda d: d.accept())
    page.click("#apply-btn")
    page.wait_for_selector("#run-state.badge-applied", timeout=30000)
    page.wait_for_function(
        "document.querySelector('#log').innerText.includes('Apply complete!')", timeout=15000
    )
    run = TerraformRun.objects.get(workspace=ws)
    assert run.status == RunStatus.APPLIED
    screenshot(page, "infra-run-applied")
    page.goto(f"{live_server.url}/infra/{ws.slug}/")
    assert "hello world" in page.inner_text("body")
    screenshot(page, "infra-workspace")
    # drift found later shows on the linked service page and the status board
    svc = ServiceFactory(slug="edge-proxy", name="Edge proxy", owner=ws.owner)
    ws.services.add(svc)
    Workspace.objects.filter(pk=ws.pk).update(
        drift_status="drifted",
        drift_summary=[{"address": "output.upstream", "action": "update", "attributes": []}],
    )
    page.goto(f"{live_server.url}/services/edge-proxy/")
    page.wait_for_selector("#infra-panel table")  # the panel loads by HTMX
    assert "drifted" in page.inner_text("#infra-panel")
    screenshot(page, "infra-service-panel")
    page.goto(f"{live_server.url}/")
    assert "Edge-Network" in page.inner_text("#board-infra")
    screenshot(page, "infra-board")
