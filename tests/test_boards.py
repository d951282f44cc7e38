"""Every app's home-page board section refreshes itself from its own URL (portal.web.board_view):
the section's template with fresh figures, for signed-in people only."""

import pytest
from django.test import Client
from django.urls import reverse

from tests.conftest import client_for

BOARDS = [
    ("pipelines:board", 'id="board-pipelines"'),
    ("releases:release_board", 'id="board-releases"'),
    ("infra:board", 'id="board-infra"'),
    ("monitoring:board", 'id="board-alerts"'),
]


@pytest.mark.parametrize(("url_name", "marker"), BOARDS)
def test_board_refresh_renders_the_section_and_needs_a_sign_in(db, alice, url_name, marker):
    url = reverse(url_name)
    resp = client_for(alice).get(url)
    assert resp.status_code == 200
    assert marker in resp.content.decode()
    anonymous = Client().get(url)
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith(reverse("login"))
