"""Chromium: a webhook push starts a run; its log scrolls in without a reload; Cancel stops it."""

import json
import re

import pytest
import requests

from pipelines.models import PipelineRun
from portal.inbound import signature_for
from tests.conftest import screenshot
from tests.pipelines.conftest import wait_for

SECRET = "e2e-webhook-secret"
LONG_SPEC = """\
stages:
  - name: build
    steps:
      - name: compile
        run: echo "compiling"
  - name: test
    steps:
      - name: long-suite
        run: |
          i=1
          while [ $i -le 240 ]; do printf '\\033[32mline %s\\033[0m ok\\n' $i; i=$((i+1)); sleep 0.25; done
"""


@pytest.mark.django_db(transaction=True)
def test_push_watch_live_log_and_cancel(
    live_server, celery_worker_proc, page, login, alice, service, git_repo, shared_data
):
    sha = git_repo.commit({"backline.yml": LONG_SPEC}, "long test suite")
    service.webhook_secret = SECRET
    service.save()
    payload = json.loads(
        (shared_data / "github-webhooks" / "push-with-new-branch.payload.json").read_text()
    )
    payload["ref"] = "refs/heads/main"
    payload["after"] = sha
    payload["repository"]["clone_url"] = git_repo.url
    body = json.dumps(payload).encode()
    resp = requests.post(
        f"{live_server.url}/hooks/github",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": "e2e-1",
            "X-Hub-Signature-256": signature_for(SECRET, body),
        },
        timeout=10,
    )
    assert resp.status_code == 202, resp.text
    run_id = resp.json()["run_id"]

    login(page, alice)
    page.goto(f"{live_server.url}/pipelines/runs/{run_id}/")
    page.evaluate("window.__noReload = 'still-here'")
    log = page.locator("#log")
    page.wait_for_function(
        "document.querySelector('#log').textContent.includes('line 2 ok')", timeout=30000
    )
    early = log.text_content()
    seen = max(int(n) for n in re.findall(r"line (\d+) ok", early))
    # lines written after the page was served arrive through the HTMX tail, not a reload (and
    # at least 8 coloured lines are there, however early the page caught the run)
    page.wait_for_function(
        f"document.querySelector('#log').textContent.includes('line {max(seen + 3, 8)} ok')",
        timeout=30000,
    )
    later = log.text_content()
    assert later.startswith(early.rstrip()[: len(early) // 2])
    assert len(later) > len(early)
    assert page.evaluate("window.__noReload") == "still-here"  # no reload: HTMX appended
    assert page.locator("#log .ansi-green").count() >= 8  # colours rendered, escapes gone
    assert "\x1b" not in later and "[32m" not in later
    assert "running" in page.locator("#run-status").text_content()
    screenshot(page, "pipelines-run-live")

    page.once("dialog", lambda d: d.accept())
    page.click("#cancel-run")
    run = wait_for(
        lambda: (r := PipelineRun.objects.get(pk=run_id)).is_over and r, 60, what="cancel to finish"
    )
    # canceled while the suite still had lines to print (240 lines, one every 0.25 s): the
    # step was killed, it did not run to its end
    assert run.status == "canceled" and run.steps.get(name="long-suite").status == "canceled"
    page.goto(f"{live_server.url}/pipelines/runs/{run_id}/")
    assert "canceled" in page.locator("#run-status").text_content()
    assert page.locator("[data-step='long-suite']").get_attribute("data-status") == "canceled"
    assert page.locator("#rerun-run").is_visible()
    assert "line 240 ok" not in page.locator("#log").text_content()
    screenshot(page, "pipelines-run-canceled")

    page.goto(f"{live_server.url}/pipelines/?service={service.slug}")
    assert page.locator("table.list tbody tr").count() == 1
    screenshot(page, "pipelines-run-list")
    page.goto(f"{live_server.url}/pipelines/services/{service.slug}/")
    screenshot(page, "pipelines-service")
