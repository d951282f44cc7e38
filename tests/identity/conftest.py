import pytest
from django.conf import settings as django_settings

from tests.identity.provider import provider_fixture

provider = pytest.fixture(provider_fixture, name="provider")


def _clear_guard():
    import redis

    client = redis.Redis.from_url(django_settings.REDIS_URL)
    for key in client.scan_iter(match="*identity:guard:*"):
        client.delete(key)


@pytest.fixture(autouse=True)
def clean_guard():
    """Lockouts and rate-limit counters are Redis keys: each test starts without any."""
    _clear_guard()
    yield
    _clear_guard()
