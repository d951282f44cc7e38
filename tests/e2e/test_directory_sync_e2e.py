"""An org admin opens *Directory sync* from the navigation in Chromium after a directory pushed
people and a group (and made a mistake): the calls, the error and the group's squad are shown."""

import pytest
import requests

from tests.conftest import screenshot
from tests.identity.scim_helpers import GROUP_SCHEMA, USER_SCHEMA, scim_session, scim_token

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_admin_sees_the_directory_sync(page, live_server, login, admin_user, squad):
    scim = scim_session(scim_token(squad, name="okta"))
    base = f"{live_server.url}/scim/v2"
    ids = []
    for who in ("dana", "erin"):
        r = scim.post(f"{base}/Users", json={"schemas": [USER_SCHEMA],
                      "userName": f"{who}@example.com", "active": True}, timeout=30)  # fmt: skip
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    dup = scim.post(f"{base}/Users", json={"schemas": [USER_SCHEMA], "userName": "dana@example.com"},
                    timeout=30)  # fmt: skip
    assert dup.status_code == 409
    r = scim.post(f"{base}/Groups", json={"schemas": [GROUP_SCHEMA], "displayName": "playback",
                  "members": [{"value": i} for i in ids]}, timeout=30)  # fmt: skip
    assert r.status_code == 201, r.text
    assert requests.get(f"{base}/Users", timeout=30).status_code == 401

    login(page, admin_user)
    page.click("nav.mainnav >> text=Directory sync")
    page.wait_for_selector("#scim-calls")
    rows = page.locator("#scim-calls tbody tr")
    assert rows.count() == 5
    assert "uniqueness" in page.locator("#scim-calls").inner_text()
    assert "playback" in page.locator("#scim-groups").inner_text()
    changes = page.locator("#scim-changes").inner_text()
    assert "person.provision" in changes and "membership.create" in changes
    screenshot(page, "directory-sync")
    page.click("text=Errors only")
    page.wait_for_url("**errors=1")
    assert page.locator("#scim-calls tbody tr").count() == 2  # the 409 and the 401
