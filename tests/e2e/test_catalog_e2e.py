"""Sign in, search the catalog, filter by squad, open a service and follow a dependency, in
Debian's Chromium driven by Playwright. Screenshots land in tests/e2e/screenshots/."""

import pytest

from squads.models import Dependency
from tests.conftest import screenshot
from tests.factories import ServiceFactory, SquadFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def catalog(squad, other_squad):
    api = ServiceFactory(
        slug="playback-api",
        name="Playback API",
        description="Starts and resumes audio streams",
        owner=squad,
        tier=1,
    )
    state = ServiceFactory(
        slug="playback-state",
        name="Playback State",
        description="Keeps the listening position in sync",
        owner=squad,
    )
    cdn = ServiceFactory(
        slug="audio-cdn",
        name="Audio CDN",
        description="Edge cache for encoded audio",
        owner=SquadFactory(slug="delivery", name="Audio Delivery"),
    )
    ServiceFactory(
        slug="search-api",
        name="Search API",
        description="Finds tracks and artists",
        owner=other_squad,
    )
    for i in range(30):
        ServiceFactory(slug=f"filler-{i:02d}", name=f"Filler {i:02d}", owner=other_squad)
    Dependency.objects.create(source=api, target_service=cdn)
    Dependency.objects.create(source=api, target_service=state)
    return api


def test_search_filter_open_service_and_follow_dependency(page, live_server, login, alice, catalog):
    login(page, alice)
    page.goto(f"{live_server.url}/catalog/")
    assert page.locator("#result-count").inner_text().startswith("34 services")
    screenshot(page, "catalog")

    # Full-text search updates the list in place (HTMX) and keeps the URL shareable.
    page.fill("#f-q", "audio")
    page.wait_for_function(
        "document.querySelector('#result-count').innerText.startsWith('2 services')"
    )
    assert "q=audio" in page.url
    names = page.locator("#service-table .svc-link").all_inner_texts()
    assert sorted(names) == ["Audio CDN", "Playback API"]

    # Filter by squad on top of the search.
    page.select_option("#f-owner", "playback")
    page.wait_for_function(
        "document.querySelector('#result-count').innerText.startsWith('1 service')"
    )
    assert "owner=playback" in page.url
    screenshot(page, "catalog-filtered")

    # A reload of the shareable URL shows the same result.
    page.goto(page.url)
    assert page.locator("#service-table .svc-link").all_inner_texts() == ["Playback API"]

    page.click("text=Playback API")
    page.wait_for_url(f"{live_server.url}/services/playback-api/")
    assert page.locator("#dependency-graph svg").count() == 1
    assert page.locator("#scorecard").is_visible()
    screenshot(page, "service")

    page.click("#upstream >> text=Audio CDN")
    page.wait_for_url(f"{live_server.url}/services/audio-cdn/")
    assert page.locator("h1").inner_text().startswith("Audio CDN")
    assert page.locator("#downstream").inner_text().strip().startswith("Playback API")
    screenshot(page, "dependency")


def test_pagination_updates_in_place(page, live_server, login, alice, catalog):
    login(page, alice)
    page.goto(f"{live_server.url}/catalog/?owner=search")
    assert page.locator("#result-count").inner_text().startswith("31 services")
    first = page.locator("#service-table .svc-link").first.inner_text()
    page.click(".next-page")
    page.wait_for_function("location.search.includes('page=2')")
    page.wait_for_function(
        f"document.querySelector('#service-table .svc-link').innerText !== {first!r}"
    )
    assert page.locator("#service-table .svc-link").count() == 6
