"""The Runtime panel reads a snapshot, not the driver: however many people watch a service, the
deploy driver (here the local Kubernetes API server, which counts the requests it answers) is
read at most once per ``RELEASES_RUNTIME_SECONDS`` per service and environment."""

import time

import pytest
from django.core.cache import cache
from django.test import Client

from portal.actors import Actor
from releases import runtime, scaling
from releases.runtime import service_runtime
from tests.factories import UserFactory
from tests.releases.test_scaling import k8s_env, kube, service  # noqa: F401 - fixtures

VIEWERS = 8


def _reads(api, since: int) -> int:
    return sum(1 for r in api.requests[since:] if r["method"] == "GET")


@pytest.fixture
def deployed(kube, k8s_env, service, alice):  # noqa: F811 - the fixtures above
    scaling.scale_service(service, actor=Actor(user=alice), environment=k8s_env, replicas=4)
    cache.delete_many([runtime._key(service, k8s_env), runtime._key(service, k8s_env) + ":lock"])
    before = len(kube.requests)
    service_runtime(service)  # what one read of the driver costs, in requests
    per_read = _reads(kube, before)
    assert per_read > 0
    return per_read


@pytest.fixture
def viewers(db):
    out = []
    for i in range(VIEWERS):
        c = Client()
        c.force_login(UserFactory(username=f"viewer{i}"))
        out.append(c)
    return out


def _panel(client, service) -> str:  # noqa: F811
    r = client.get(f"/releases/services/{service.slug}/runtime")
    assert r.status_code == 200
    return r.content.decode()


def test_many_viewers_polling_read_the_driver_once_per_interval(
    settings,
    kube,  # noqa: F811
    k8s_env,  # noqa: F811
    service,  # noqa: F811
    deployed,
    viewers,
):
    settings.RELEASES_RUNTIME_SECONDS = 3600  # every poll below falls within one interval
    before = len(kube.requests)
    for _ in range(5):
        for client in viewers:
            page = _panel(client, service)
            assert "playback-api-7d9f-1" in page and " s ago" in page
    assert _reads(kube, before) == deployed  # 40 polls, one driver read

    # the snapshot is shown with its age
    key = runtime._key(service, k8s_env)
    snap = cache.get(key)
    cache.set(key, {**snap, "at": snap["at"] - 42}, timeout=60)
    assert "read 42 s ago" in _panel(viewers[0], service)
    assert _reads(kube, before) == deployed


def test_beat_refreshes_the_watched_snapshot_once_per_interval(
    settings,
    kube,  # noqa: F811
    k8s_env,  # noqa: F811
    service,  # noqa: F811
    deployed,
    viewers,
):
    settings.RELEASES_RUNTIME_SECONDS = 3600
    _panel(viewers[0], service)  # watched (and the first read)
    before = len(kube.requests)
    assert runtime.refresh_watched() == 0  # read within this interval already
    cache.delete(runtime._key(service, k8s_env) + ":lock")  # the interval passes
    assert runtime.refresh_watched() == 1
    assert runtime.refresh_watched() == 0
    for client in viewers:
        _panel(client, service)
    assert _reads(kube, before) == deployed


def test_reads_stay_within_one_per_interval_while_time_passes(
    settings,
    kube,  # noqa: F811
    service,  # noqa: F811
    deployed,
    viewers,
):
    """A short interval and viewers polling until the driver was read three times: however slow
    the machine, the reads never outnumber the intervals that passed (plus the first)."""
    settings.RELEASES_RUNTIME_SECONDS = 1
    before, started = len(kube.requests), time.monotonic()
    deadline = started + 30
    while _reads(kube, before) < 3 * deployed and time.monotonic() < deadline:
        for client in viewers:
            _panel(client, service)
    elapsed = time.monotonic() - started
    reads = _reads(kube, before) / deployed
    assert reads >= 3, "the snapshot was never refreshed"
    assert reads <= elapsed / settings.RELEASES_RUNTIME_SECONDS + 1
