"""The Runtime panel reads a snapshot, not the driver: however many people watch a service, the
deploy driver (here the local Kubernetes API server, which counts the requests it answers) is
read at most once per ``RELEASES_RUNTIME_SECONDS`` per service and environment."""

import re
import time
from types import SimpleNamespace

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
    """The service scaled in the Kubernetes environment; ``per_read``: the requests one read
    of the driver makes."""
    scaling.scale_service(service, actor=Actor(user=alice), environment=k8s_env, replicas=4)
    key = runtime._key(service, k8s_env)
    cache.delete_many([key, key + ":lock"])
    before = len(kube.requests)
    service_runtime(service)
    per_read = _reads(kube, before)
    assert per_read > 0
    return SimpleNamespace(kube=kube, env=k8s_env, service=service, key=key, per_read=per_read)


@pytest.fixture
def viewers(db):
    out = []
    for i in range(VIEWERS):
        c = Client()
        c.force_login(UserFactory(username=f"viewer{i}"))
        out.append(c)
    return out


def _panel(client, service) -> str:  # noqa: F811 - a service, not the fixture
    r = client.get(f"/releases/services/{service.slug}/runtime")
    assert r.status_code == 200
    return r.content.decode()


def test_many_viewers_polling_read_the_driver_once_per_interval(settings, deployed, viewers):
    settings.RELEASES_RUNTIME_SECONDS = 3600  # every poll below falls within one interval
    d = deployed
    before = len(d.kube.requests)
    for _ in range(5):
        for client in viewers:
            page = _panel(client, d.service)
            assert "playback-api-7d9f-1" in page and " s ago" in page
    assert _reads(d.kube, before) == d.per_read  # 40 polls, one driver read

    # the snapshot is shown with its age
    snap = cache.get(d.key)
    cache.set(d.key, {**snap, "at": snap["at"] - 42}, timeout=60)
    (age,) = re.findall(r"read (\d+) s ago", _panel(viewers[0], d.service))
    assert 42 <= int(age) < 3600  # its age, and no new read although older than before
    assert _reads(d.kube, before) == d.per_read


def test_beat_refreshes_the_watched_snapshot_once_per_interval(settings, deployed, viewers):
    settings.RELEASES_RUNTIME_SECONDS = 3600
    d = deployed
    _panel(viewers[0], d.service)  # watched (and the first read)
    before = len(d.kube.requests)
    assert runtime.refresh_watched() == 0  # read within this interval already
    cache.delete(d.key + ":lock")  # the interval passes
    assert runtime.refresh_watched() == 1
    assert runtime.refresh_watched() == 0
    for client in viewers:
        _panel(client, d.service)
    assert _reads(d.kube, before) == d.per_read


def test_reads_stay_within_one_per_interval_while_time_passes(settings, deployed, viewers):
    """A short interval and viewers polling until the driver was read three times: however slow
    the machine, the reads never outnumber the intervals that passed (plus the first)."""
    settings.RELEASES_RUNTIME_SECONDS = 1
    d = deployed
    before, started = len(d.kube.requests), time.monotonic()
    deadline = started + 30
    while _reads(d.kube, before) < 3 * d.per_read and time.monotonic() < deadline:
        for client in viewers:
            _panel(client, d.service)
    elapsed = time.monotonic() - started
    reads = _reads(d.kube, before) / d.per_read
    assert reads >= 3, "the snapshot was never refreshed"
    assert reads <= elapsed / settings.RELEASES_RUNTIME_SECONDS + 1
