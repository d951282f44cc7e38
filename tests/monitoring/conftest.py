import pytest

from monitoring.fleet import Fleet, FleetService
from tests.factories import ServiceFactory


@pytest.fixture
def fleet():
    """One real instrumented service (stable + canary) with no random errors."""
    f = Fleet([FleetService("checkout", error_rate=0.0, latency_ms=30)]).start()
    yield f
    f.stop()


@pytest.fixture
def checkout(db, squad, fleet):
    return ServiceFactory(
        slug="checkout", name="Checkout", owner=squad, metrics_urls=fleet.metrics_urls("checkout")
    )
