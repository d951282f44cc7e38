"""Single sign-on in Chromium against a real OpenID provider (oidc-provider on loopback): the
button on Backline's sign-in page, the provider's own sign-in page, landing in Backline as that
person with the claim's squads; a second sign-in after the claim changed; sign-out through the
provider; an admin-group member is an org admin. Screenshots: sign-in page, profile."""

import pytest

from squads.models import Membership, Person
from tests.conftest import screenshot
from tests.factories import MembershipFactory, PersonFactory, SquadFactory
from tests.identity.provider import provider_fixture

provider = pytest.fixture(provider_fixture, name="provider")

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

DANA = {
    "login": "dana",
    "password": "dana-secret",
    "email": "dana@example.com",
    "name": "Dana Scully",
}

ERIN = {
    "login": "erin",
    "password": "erin-secret",
    "email": "erin@example.com",
    "name": "Erin Admin",
    "groups": ["backline-admins"],
}


def sso_sign_in(page, live_server, login, password):
    page.goto(f"{live_server.url}/login/")
    page.get_by_role("link", name="Sign in with Test IdP").click()
    page.wait_for_selector("text=Sign in to Test IdP")  # the provider's own page
    assert page.url.startswith("http://127.0.0.1:") and "/interaction/" in page.url
    page.fill("#login", login)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")


def sign_out(page, live_server):
    page.click(".usermenu summary")
    page.click("text=Sign out")
    page.wait_for_selector("text=Yes, sign me out")  # the provider asks about its own session
    page.click("text=Yes, sign me out")
    page.wait_for_url(lambda url: url.startswith(f"{live_server.url}/login/"))
    assert page.get_by_role("link", name="Sign in with Test IdP").is_visible()


def squads_on_profile(page, live_server):
    page.goto(f"{live_server.url}/me/")
    rows = page.locator("#memberships tbody tr[data-squad]")
    return {
        rows.nth(i).get_attribute("data-squad"): rows.nth(i).get_attribute("data-source")
        for i in range(rows.count())
    }


def test_sign_in_with_the_provider_follows_the_directory(
    page, live_server, provider, squad, other_squad, settings
):
    settings.OIDC_ADMIN_GROUPS = ["backline-admins"]
    SquadFactory(slug="data", name="Data Platform", tribe=squad.tribe)
    dana = PersonFactory(slug="dana", name="Dana Scully", email="dana@example.com")
    MembershipFactory(person=dana, squad=other_squad, role="lead")  # typed in Backline
    provider.set_accounts(
        {
            "00u-dana": {**DANA, "groups": ["playback", "eng-data"]},
            "00u-erin": ERIN,
        }
    )
    settings.OIDC_GROUP_MAP = {"eng-data": "data"}

    page.goto(f"{live_server.url}/login/")
    assert page.get_by_role("link", name="Sign in with Test IdP").is_visible()
    assert page.locator("#id_password").is_visible()  # break-glass password form stays
    screenshot(page, "sign-in")

    page.goto(f"{live_server.url}/oidc/callback/?error=access_denied&error_description=Not+now")
    assert "access_denied" in page.locator("#sign-in-error").inner_text()
    screenshot(page, "sign-in-error")

    sso_sign_in(page, live_server, "dana", "dana-secret")
    assert page.locator(".usermenu summary").inner_text().strip() == "Dana Scully"
    assert squads_on_profile(page, live_server) == {
        "playback": "directory",
        "data": "directory",
        "search": "manual",
    }
    assert (
        page.locator("tr[data-squad=playback] .origin").inner_text().endswith("via single sign-on")
    )
    screenshot(page, "profile")
    assert Person.objects.get(slug="dana").oidc_subject == "00u-dana"  # linked by email

    # the directory moved Dana out of playback: the next sign-in follows, search stays
    provider.set_accounts({"00u-dana": {**DANA, "groups": ["eng-data"]}})
    sign_out(page, live_server)
    sso_sign_in(page, live_server, "dana", "dana-secret")
    assert squads_on_profile(page, live_server) == {"data": "directory", "search": "manual"}
    assert not Membership.objects.filter(person=dana, squad=squad).exists()
    assert not Person.objects.get(slug="dana").user.is_superuser

    # an admin-group member is an org admin
    provider.set_accounts({"00u-erin": ERIN})
    sign_out(page, live_server)
    sso_sign_in(page, live_server, "erin", "erin-secret")
    page.goto(f"{live_server.url}/me/")
    assert page.locator(".pagehead .badge-warn").inner_text() == "org admin"
    page.goto(f"{live_server.url}/admin/")
    assert "Site administration" in page.content()
    assert Person.objects.get(oidc_subject="00u-erin").user.is_superuser


def test_the_sign_in_page_when_locked_out_and_when_the_provider_is_down(
    page, live_server, settings
):
    """The password form after too many wrong passwords (the right one refused, the time left
    shown), then password sign-in turned off with the provider unreachable: only the button,
    and its failure is a page with a way back. Screenshots: sign-in-locked, sign-in-sso-only,
    sign-in-provider-down."""
    import uuid

    from tests.conftest import PASSWORD
    from tests.factories import UserFactory
    from tests.identity.provider import warm_up

    settings.LOGIN_MAX_FAILURES, settings.LOGIN_IP_MAX_FAILURES = 3, 1000
    user = UserFactory(username=f"locked-{uuid.uuid4().hex[:8]}")
    warm_up(live_server.url)
    for password in ("wrong-1", "wrong-2", "wrong-3", PASSWORD):
        page.goto(f"{live_server.url}/login/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", password)
        page.click("#password-form button[type=submit]")
        page.wait_for_selector("#id_password")
    alert = page.get_by_role("alert").inner_text()
    assert "Too many failed sign-ins for this username" in alert and "15 minutes" in alert
    assert page.url == f"{live_server.url}/login/"  # the right password did not sign in
    screenshot(page, "sign-in-locked")

    settings.PASSWORD_LOGIN = False
    settings.OIDC_ISSUER, settings.OIDC_CLIENT_ID = "http://127.0.0.1:9", "backline"
    settings.OIDC_PROVIDER_NAME = "Okta"
    page.goto(f"{live_server.url}/login/")
    assert page.get_by_role("link", name="Sign in with Okta").is_visible()
    assert page.locator("#id_password").count() == 0
    screenshot(page, "sign-in-sso-only")
    page.get_by_role("link", name="Sign in with Okta").click()
    page.wait_for_selector("#sign-in-error")
    assert "did not answer at discovery" in page.locator("#sign-in-error").inner_text()
    back = page.get_by_role("link", name="Back to sign-in")
    assert back.is_visible() and page.get_by_role("link", name="Try Okta again").is_visible()
    screenshot(page, "sign-in-provider-down")
    back.click()
    page.wait_for_selector("#sso-button")
