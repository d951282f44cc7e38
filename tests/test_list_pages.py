"""Every filtered list page (``portal.listing.render_list``) offers the squad picker."""

import pytest

from tests.conftest import client_for


@pytest.mark.parametrize("url", ["/pipelines/", "/releases/", "/infra/", "/audit/"])
def test_list_page_offers_every_squad(url, admin_user, squad, other_squad):
    resp = client_for(admin_user).get(url)
    assert resp.status_code == 200
    page = resp.content.decode()
    for s in (squad, other_squad):
        assert f'<option value="{s.slug}"' in page, (url, s.slug)
