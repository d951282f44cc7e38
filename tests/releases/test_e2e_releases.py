"""Playwright (Debian's Chromium): Promote a paused release and see the new weight without a
reload; Abort another and see it roll back."""

import pytest

from releases.models import Release
from tests.conftest import screenshot
from tests.releases.conftest import settle


@pytest.mark.django_db(transaction=True)
def test_promote_then_abort_in_the_browser(
    live_server, page, login, alice, paused_release, deployer
):
    r = paused_release("5.0.0")
    login(page, alice)
    page.goto(f"{live_server.url}/releases/{r.pk}/")
    page.evaluate("window.__noReload = 'still-here'")
    assert page.locator("#release-status").text_content().strip() == "paused"
    assert page.locator("#release-weight .weight-num").text_content().strip() == "10 %"
    screenshot(page, "release-paused")
    page.once("dialog", lambda d: d.accept())
    page.click("#btn-promote")
    # the click answers at once: the page shows the weight being applied ...
    page.wait_for_selector("#release-applying")
    assert "moving to 30 %" in page.locator("#release-applying").text_content()
    settle(r)  # ... until a worker has the driver confirm it (no worker here: we do it)
    page.wait_for_function(
        "document.querySelector('#release-weight .weight-num').textContent.trim() === '30 %'"
    )
    assert page.evaluate("window.__noReload") == "still-here"
    assert Release.objects.get(pk=r.pk).weight == 30
    assert deployer.actions()[-1]["weight"] == 30
    screenshot(page, "release-promoted")

    r.status = "aborted"  # finish the first so another release of the service can start
    r.save(update_fields=["status"])
    other = paused_release("5.0.1")
    page.goto(f"{live_server.url}/releases/{other.pk}/")
    page.evaluate("window.__noReload = 'still-here'")
    page.once("dialog", lambda d: d.accept())
    page.click("#btn-abort")
    page.wait_for_function(
        "document.querySelector('#release-status').textContent.trim() === 'aborted'"
    )
    page.wait_for_selector("#release-applying")  # rolling back
    settle(other)
    page.wait_for_selector("#release-applying", state="detached")
    assert page.locator("#release-weight .weight-num").text_content().strip() == "0 %"
    assert page.evaluate("window.__noReload") == "still-here"
    assert "aborted by alice" in page.locator("#release-message").text_content()
    assert page.locator("#btn-retry").is_visible()
    assert deployer.actions()[-1]["action"] == "rollback"
    screenshot(page, "release-aborted")
    page.goto(f"{live_server.url}/releases/?service=playback-api")
    assert page.locator("#release-results tbody tr").count() == 2
    screenshot(page, "release-list")
