"""The kubernetes driver against whatever cluster ``KUBECONFIG`` names (marked ``kubernetes``).

With ``KUBECONFIG`` set (a real cluster; namespace ``BACKLINE_TEST_NAMESPACE``, default
``backline-test``, which must exist), the test creates two Deployments through the official
client, runs a release through the driver (replica ratio: 10 % → 50 % → promote), reads the
result back from the cluster and deletes what it made. Without it, the same test runs against
the local server speaking the Kubernetes REST protocol (``tests/k8s_api.py``), reached through
a kubeconfig exactly as a cluster is: same client, same calls, same assertions.
"""

import os

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from portal.actors import Actor
from releases import services
from releases.models import Environment
from tests.k8s_api import FakeKubernetes, deployment
from tests.releases.conftest import settle

pytestmark = pytest.mark.kubernetes
STEPS = [{"set_weight": 10}, {"pause": {}}, {"set_weight": 50}, {"pause": {}}]
NAMES = ("playback-api", "playback-api-canary")


@pytest.fixture
def cluster(tmp_path):
    """(kubeconfig path, namespace): the real cluster's, or the local server's."""
    if os.environ.get("KUBECONFIG"):
        yield os.environ["KUBECONFIG"], os.environ.get("BACKLINE_TEST_NAMESPACE", "backline-test")
        return
    fake = FakeKubernetes()
    yield fake.kubeconfig(tmp_path / "kubeconfig"), "apps"
    fake.stop()


def test_release_on_the_cluster(cluster, playback_api, alice):
    kubeconfig, ns = cluster
    apps = k8s.AppsV1Api(k8s_config.new_client_from_config(config_file=kubeconfig))
    for name, replicas in zip(NAMES, (4, 0), strict=True):
        apps.create_namespaced_deployment(ns, deployment(name, "nginx:1.27", replicas))
    env = Environment.objects.create(
        name="cluster",
        driver="kubernetes",
        driver_config={"kubeconfig": kubeconfig, "namespace": ns, "image": "nginx:{version}"},
    )
    try:
        actor = Actor(user=alice)
        r = settle(
            services.create_release(
                playback_api, actor=actor, environment=env, version="1.28", steps=STEPS
            )
        )
        assert r.weight == 10, r.driver_error
        canary = apps.read_namespaced_deployment(NAMES[1], ns)
        assert canary.spec.replicas == 1
        assert canary.spec.template.spec.containers[0].image == "nginx:1.28"
        r = settle(services.promote_release(r, actor=actor, step=r.step_index))
        assert r.weight == 50
        assert apps.read_namespaced_deployment(NAMES[0], ns).spec.replicas == 2
        r = settle(services.promote_release_full(r, actor=actor))
        assert r.status == "succeeded", r.driver_error
        stable = apps.read_namespaced_deployment(NAMES[0], ns)
        assert stable.spec.template.spec.containers[0].image == "nginx:1.28"
        assert stable.spec.replicas == 4
        assert apps.read_namespaced_deployment(NAMES[1], ns).spec.replicas == 0
    finally:
        if os.environ.get("KUBECONFIG"):
            for name in NAMES:
                apps.delete_namespaced_deployment(name, ns)
