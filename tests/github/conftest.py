import pytest

from portal import github
from tests.github.fakegithub import FakeGitHub


@pytest.fixture
def fake_github(settings, tmp_path):
    hub = FakeGitHub(tmp_path / "github").start()
    settings.GITHUB_API_URL = hub.url
    settings.GITHUB_TOKEN = ""
    settings.GITHUB_APP_ID = hub.app_id
    settings.GITHUB_APP_PRIVATE_KEY = str(hub.key_path)
    settings.GITHUB_APP_INSTALLATION_ID = hub.installation_id
    settings.GITHUB_RATE_LIMIT_MAX_WAIT = 5.0
    github._TOKENS.clear()
    yield hub
    hub.stop()
    github._TOKENS.clear()
