"""The kubernetes and argo-rollouts deploy drivers, through the official client, against a local
server speaking the Kubernetes REST protocol (tests/k8s_api.py) — no API server runs here.

The expected requests are written from what ``kubectl`` and ``kubectl argo rollouts`` send for
the same action (their documented API semantics), not read back from the driver:
- ``kubectl set image deployment/X app=IMG``: PATCH, strategic merge, the container by name;
- ``kubectl scale deployment/X --replicas=N``: PATCH of the ``scale`` subresource;
- HTTPRoute weights: read, change the two backendRefs' ``weight``, write back with the read
  ``resourceVersion`` (optimistic concurrency; 409 → read again);
- ``kubectl argo rollouts set image``: GET, then PUT of the whole Rollout (conflicts retried);
  ``promote``: merge patch of the status subresource ``{"status":{"pauseConditions":null}}``
  and, when ``spec.paused``, ``{"spec":{"paused":false}}``; ``promote --full``:
  ``{"status":{"promoteFull":true}}``; ``abort``: ``{"status":{"abort":true}}``; ``retry``:
  ``{"status":{"abort":false}}``.
"""

import os

import pytest
from django.test import Client

from portal.actors import Actor
from releases import observe, services
from releases.drivers import DriverError, get_driver
from releases.models import Environment, Release
from tests.k8s_api import FakeKubernetes, deployment, http_route
from tests.releases.conftest import drive_until, settle

pytestmark = [
    pytest.mark.kubernetes,
    pytest.mark.skipif(
        bool(os.environ.get("KUBECONFIG")), reason="recorded-request tests need the local server"
    ),
]

NS = "apps"
APPS = "apis/apps/v1"
GW = "apis/gateway.networking.k8s.io/v1"
ARGO = "apis/argoproj.io/v1alpha1"
PAUSING = [{"set_weight": 10}, {"pause": {}}, {"set_weight": 50}, {"pause": {}}]


@pytest.fixture
def kube(tmp_path):
    api = FakeKubernetes()
    api.kubeconfig_path = api.kubeconfig(tmp_path / "kubeconfig")
    yield api
    api.stop()


def _env(kube, name, driver, **config):
    env, _ = Environment.objects.update_or_create(
        name=name,
        defaults={
            "driver": driver,
            "driver_config": {"kubeconfig": kube.kubeconfig_path, "namespace": NS, **config},
        },
    )
    return env


@pytest.fixture
def deployments(kube):
    kube.put(APPS, NS, "deployments", deployment("playback-api", "reg.example/playback-api:1.0", 4))
    kube.put(
        APPS,
        NS,
        "deployments",
        deployment("playback-api-canary", "reg.example/playback-api:1.0", 0),
    )


IMAGE = {"image": "reg.example/{service}:{version}"}


def _set_image(name, image, containers=("app",)):
    """``kubectl set image deployment/<name> app=<image>``: the two-way strategic merge patch
    kubectl computes (``strategicpatch.CreateTwoWayMergePatch``), which lists every container
    by name in ``$setElementOrder/containers`` and carries only the changed one."""
    pod_spec = {
        "$setElementOrder/containers": [{"name": c} for c in containers],
        "containers": [{"image": image, "name": "app"}],
    }
    return {
        "method": "PATCH",
        "path": f"/{APPS}/namespaces/{NS}/deployments/{name}",
        "content_type": "application/strategic-merge-patch+json",
        "body": {"spec": {"template": {"spec": pod_spec}}},
    }


def _scale(name, replicas):
    return {
        "method": "PATCH",
        "path": f"/{APPS}/namespaces/{NS}/deployments/{name}/scale",
        "content_type": "application/merge-patch+json",
        "body": {"spec": {"replicas": replicas}},
    }


def _route_write(kube, stable_weight, canary_weight):
    req = next(r for r in reversed(kube.writes()) if r["path"].endswith("/httproutes/playback-api"))
    assert req["method"] == "PATCH" and req["content_type"] == "application/merge-patch+json"
    refs = req["body"]["spec"]["rules"][0]["backendRefs"]
    assert [(r["name"], r["weight"]) for r in refs] == [
        ("playback-api", stable_weight),
        ("playback-api-canary", canary_weight),
    ]
    assert req["body"]["metadata"]["resourceVersion"]  # optimistic concurrency


def _routed_release(kube, service, user, version):
    """A release started in an environment whose traffic moves on an HTTPRoute."""
    kube.put(
        GW, NS, "httproutes", http_route("playback-api", "playback-api", "playback-api-canary")
    )
    env = _env(kube, "k8s-prod", "kubernetes", route="{service}", **IMAGE)
    actor = Actor(user=user)
    r = settle(
        services.create_release(
            service, actor=actor, environment=env, version=version, steps=PAUSING
        )
    )
    assert (r.status, r.weight) == ("paused", 10), (r.status, r.driver_error)
    return env, actor, r


def test_gateway_route_canary_through_a_release(kube, deployments, playback_api, alice):
    env, actor, r = _routed_release(kube, playback_api, alice, "2.0")
    writes = kube.writes()
    assert writes[0] == _set_image("playback-api-canary", "reg.example/playback-api:2.0")
    assert writes[1] == _scale("playback-api-canary", 1)  # ceil(4 × 10 %)
    _route_write(kube, 90, 10)

    since = len(kube.requests)
    r = settle(services.promote_release(r, actor=actor, step=r.step_index))
    assert r.weight == 50
    assert _scale("playback-api-canary", 2) in kube.writes(since)
    _route_write(kube, 50, 50)
    st = get_driver(env).status(r)
    assert st.weight == 50 and st.healthy
    assert st.detail["tracks"]["canary"]["image"] == "reg.example/playback-api:2.0"

    since = len(kube.requests)
    r = settle(services.promote_release_full(r, actor=actor))
    assert r.status == "succeeded", (r.status, r.driver_error)
    writes = kube.writes(since)
    # all traffic on the canary first (the last step, 100 %), then stable takes its image
    assert writes[0] == _scale("playback-api-canary", 4)
    assert writes.index(_set_image("playback-api", "reg.example/playback-api:2.0")) > 0
    _route_write(kube, 100, 0)
    assert writes[-1] == _scale("playback-api-canary", 0)
    stable = kube.get(APPS, NS, "deployments", "playback-api")
    assert (
        stable["spec"]["template"]["spec"]["containers"][0]["image"]
        == "reg.example/playback-api:2.0"
    )
    assert stable["metadata"]["generation"] == 2 and stable["status"]["observedGeneration"] == 2


def test_route_conflicts_are_read_again_and_retried(kube, deployments, playback_api):
    kube.put(
        GW, NS, "httproutes", http_route("playback-api", "playback-api", "playback-api-canary")
    )
    env = _env(kube, "k8s-prod", "kubernetes", route="{service}", **IMAGE)
    release = Release(service=playback_api, environment=env, version="2.0")
    kube.interfere["playback-api"] = 2  # two concurrent writes land before ours
    get_driver(env).set_weight(release, 30)
    route_writes = [
        r
        for r in kube.requests
        if r["path"].endswith("httproutes/playback-api") and r["method"] == "PATCH"
    ]
    assert len(route_writes) == 3  # two answered 409, the third landed
    refs = kube.get(GW, NS, "httproutes", "playback-api")["spec"]["rules"][0]["backendRefs"]
    assert [r["weight"] for r in refs] == [70, 30]

    kube.interfere["playback-api"] = 10  # never settles: a clear error, nothing half-written
    with pytest.raises(DriverError, match="409"):
        get_driver(env).set_weight(release, 60)
    refs = kube.get(GW, NS, "httproutes", "playback-api")["spec"]["rules"][0]["backendRefs"]
    assert [r["weight"] for r in refs] == [70, 30]


def test_replica_ratio_without_a_route_and_abort(kube, deployments, playback_api, alice):
    env = _env(kube, "k8s-vm", "kubernetes", **IMAGE)
    actor = Actor(user=alice)
    r = settle(
        services.create_release(
            playback_api, actor=actor, environment=env, version="2.1", steps=PAUSING
        )
    )
    assert r.weight == 10
    # canary ≈ 10 % of the 4 replicas → 1 (at least one), scaled up before stable goes down
    assert kube.writes()[1:] == [_scale("playback-api-canary", 1), _scale("playback-api", 3)]
    r = settle(services.promote_release(r, actor=actor, step=r.step_index))
    assert kube.writes()[-2:] == [_scale("playback-api-canary", 2), _scale("playback-api", 2)]
    assert get_driver(env).status(r).weight == 50

    since = len(kube.requests)
    r = settle(services.abort_release(r, actor=actor, reason="errors"))
    assert r.status == "aborted" and r.weight == 0
    assert kube.writes(since) == [_scale("playback-api", 4), _scale("playback-api-canary", 0)]


def test_set_image_keeps_the_sidecar_and_the_order(kube, playback_api):
    for name, replicas in (("playback-api", 4), ("playback-api-canary", 0)):
        d = deployment(name, "reg.example/playback-api:1.0", replicas)
        d["spec"]["template"]["spec"]["containers"].insert(0, {"name": "proxy", "image": "envoy:1"})
        kube.put(APPS, NS, "deployments", d)
    env = _env(kube, "k8s-prod", "kubernetes", container="app", **IMAGE)
    get_driver(env).set_weight(Release(service=playback_api, environment=env, version="2.2"), 10)
    assert kube.writes()[0] == _set_image(
        "playback-api-canary", "reg.example/playback-api:2.2", containers=("proxy", "app")
    )
    pod_spec = kube.get(APPS, NS, "deployments", "playback-api-canary")["spec"]["template"]["spec"]
    assert pod_spec["containers"] == [
        {"name": "proxy", "image": "envoy:1"},
        {"name": "app", "image": "reg.example/playback-api:2.2"},
    ]


def test_abort_with_a_route_moves_traffic_before_scaling(kube, deployments, playback_api, alice):
    _, actor, r = _routed_release(kube, playback_api, alice, "2.3")
    since = len(kube.requests)
    r = settle(services.abort_release(r, actor=actor, reason="errors"))
    assert (r.status, r.weight) == ("aborted", 0), (r.status, r.driver_error)
    writes = kube.writes(since)
    assert [w["path"].rsplit("/", 1)[-1] for w in writes] == ["playback-api", "scale"]
    _route_write(kube, 100, 0)  # traffic back on stable first
    assert writes[-1] == _scale("playback-api-canary", 0)
    stable = kube.get(APPS, NS, "deployments", "playback-api")
    assert stable["spec"]["replicas"] == 4  # stable kept its size and image
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.0")


def test_api_errors_show_and_leave_the_release_where_it_was(
    kube, deployments, playback_api, alice, settings
):
    settings.RELEASES_DRIVER_RETRY_SECONDS = 0.2
    env = _env(kube, "k8s-prod", "kubernetes", **IMAGE)
    kube.fail["playback-api-canary"] = 403
    r = settle(
        services.create_release(
            playback_api, actor=Actor(user=alice), environment=env, version="3", steps=PAUSING
        )
    )
    assert r.weight == 0 and r.status == "progressing"
    assert "HTTP 403" in r.driver_error and "simulated failure" in r.driver_error
    assert not kube.writes()  # nothing half-applied
    assert r.events.filter(kind="driver", message__contains="HTTP 403").exists()
    del kube.fail["playback-api-canary"]
    r = drive_until(r, lambda x: x.status == "paused")  # beat wants the same call again
    assert r.weight == 10 and r.driver_error == ""


def test_stuck_deployment_pauses_the_release_with_the_reason(
    kube, deployments, playback_api, alice
):
    env = _env(kube, "k8s-prod", "kubernetes", **IMAGE)
    kube.stuck.add("playback-api-canary")
    steps = [{"set_weight": 10}, {"pause": {"duration": 3600}}, {"set_weight": 50}]
    r = settle(
        services.create_release(
            playback_api, actor=Actor(user=alice), environment=env, version="4", steps=steps
        )
    )
    assert r.status == "paused" and r.pause_until is not None  # the timed pause, not stuck yet
    r.status, r.pause_until = "progressing", None  # as if the pause just ended
    r.save(update_fields=["status", "pause_until"])
    assert observe.observe_all() == 1
    r = Release.objects.get(pk=r.pk)
    assert r.status == "paused" and "timed out progressing" in r.message, r.message
    assert r.observed["healthy"] is False
    assert r.observed["detail"]["tracks"]["canary"]["ready"] == 0
    page = client_for_page(alice).get(r.get_absolute_url()).content.decode()
    assert "Deployer" in page and "timed out progressing" in page and "not healthy" in page


def client_for_page(user):
    c = Client()
    c.force_login(user)
    return c


def test_stuck_deployment_is_reported(kube, deployments, playback_api):
    env = _env(kube, "k8s-prod", "kubernetes", **IMAGE)
    kube.stuck.add("playback-api-canary")
    release = Release(service=playback_api, environment=env, version="2.0")
    get_driver(env).set_weight(release, 10)
    st = get_driver(env).status(release)
    assert not st.healthy
    assert "ProgressDeadlineExceeded" not in st.detail["stuck"]  # the message, not the code
    assert "timed out progressing" in st.detail["stuck"]


def test_bad_names_and_images_are_refused(kube, deployments, playback_api):
    env = _env(kube, "k8s-prod", "kubernetes", image="reg.example/x:{version}")
    release = Release(service=playback_api, environment=env, version="1 && rm -rf /")
    with pytest.raises(DriverError, match="not a container image"):
        get_driver(env).set_weight(release, 10)
    env.driver_config = {**env.driver_config, "deployment": "../../secrets"}
    with pytest.raises(DriverError, match="not a Kubernetes name"):
        get_driver(env).promote(Release(service=playback_api, environment=env, version="1"))
    assert not kube.writes()


# --- Argo Rollouts --------------------------------------------------------------------------------
def rollout(image="reg.example/playback-api:1.0", **status):
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "playback-api"},
        "spec": {
            "replicas": 5,
            "selector": {"matchLabels": {"app": "playback-api"}},
            "template": {"spec": {"containers": [{"name": "app", "image": image}]}},
            "strategy": {
                "canary": {
                    "steps": [{"setWeight": 10}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]
                }
            },
        },
        "status": {
            "phase": "Healthy",
            "currentPodHash": "aaa",
            "stableRS": "aaa",
            "currentStepIndex": 4,
            **status,
        },
    }


def _status_patch(body):
    return {
        "method": "PATCH",
        "path": f"/{ARGO}/namespaces/{NS}/rollouts/playback-api/status",
        "content_type": "application/merge-patch+json",
        "body": body,
    }


def test_argo_rollout_driven_like_the_plugin(kube, playback_api, alice):
    kube.put(ARGO, NS, "rollouts", rollout())
    env = _env(kube, "argo", "argo-rollouts", **IMAGE)
    actor = Actor(user=alice)

    r = settle(
        services.create_release(
            playback_api, actor=actor, environment=env, version="2.0", steps=PAUSING
        )
    )
    assert r.weight == 10, r.driver_error
    put = kube.writes()[0]
    assert (
        put["method"] == "PUT" and put["path"] == f"/{ARGO}/namespaces/{NS}/rollouts/playback-api"
    )
    assert (
        put["body"]["spec"]["template"]["spec"]["containers"][0]["image"]
        == "reg.example/playback-api:2.0"
    )
    assert put["body"]["metadata"]["resourceVersion"]

    # Argo's controller moves the Rollout to its first pause at 10 %
    ro = kube.objects[(ARGO, NS, "rollouts", "playback-api")]
    ro["status"].update(
        phase="Paused",
        currentPodHash="bbb",
        currentStepIndex=1,
        pauseConditions=[{"reason": "CanaryPauseStep", "startTime": "2026-12-01T10:00:00Z"}],
        canary={"weights": {"canary": {"weight": 10}, "stable": {"weight": 90}}},
    )
    since = len(kube.requests)
    r = settle(services.promote_release(r, actor=actor, step=r.step_index))
    assert kube.writes(since) == [_status_patch({"status": {"pauseConditions": None}})]
    assert "pauseConditions" not in kube.get(ARGO, NS, "rollouts", "playback-api")["status"]

    since = len(kube.requests)
    r = settle(services.promote_release_full(r, actor=actor))
    assert r.status == "succeeded"
    assert kube.writes(since) == [_status_patch({"status": {"promoteFull": True}})]


def test_argo_spec_paused_unpauses_and_abort_retry(kube, playback_api):
    kube.put(
        ARGO,
        NS,
        "rollouts",
        rollout(image="reg.example/playback-api:2.0", currentStepIndex=1, currentPodHash="bbb"),
    )
    ro = kube.objects[(ARGO, NS, "rollouts", "playback-api")]
    ro["spec"]["paused"] = True
    env = _env(kube, "argo", "argo-rollouts", **IMAGE)
    release = Release(service=playback_api, environment=env, version="2.0")
    driver = get_driver(env)
    driver.set_weight(release, 50)
    # no pause conditions: the plugin moves to the next step and unpauses the spec
    assert kube.writes() == [
        _status_patch({"status": {"pauseConditions": None, "currentStepIndex": 2}}),
        {
            "method": "PATCH",
            "path": f"/{ARGO}/namespaces/{NS}/rollouts/playback-api",
            "content_type": "application/merge-patch+json",
            "body": {"spec": {"paused": False}},
        },
    ]
    driver.rollback(release)
    driver.retry(release)
    assert kube.writes()[-2:] == [
        _status_patch({"status": {"abort": True}}),
        _status_patch({"status": {"abort": False}}),
    ]


def _rollout_patch(body):
    return {
        "method": "PATCH",
        "path": f"/{ARGO}/namespaces/{NS}/rollouts/playback-api",
        "content_type": "application/merge-patch+json",
        "body": body,
    }


def test_argo_promote_corner_cases_as_the_plugin(kube, playback_api):
    """``getPatches`` of the plugin's promote: an unset step index counts as step 0; a canary
    without steps only unpauses; without the status subresource (Rollouts before v0.10) the
    spec and status changes go as one patch of the Rollout."""
    env = _env(kube, "argo", "argo-rollouts", **IMAGE)
    release = Release(service=playback_api, environment=env, version="1.0")  # what it runs
    ro = rollout(currentPodHash="bbb")
    del ro["status"]["currentStepIndex"]
    ro["spec"]["paused"] = True
    kube.put(ARGO, NS, "rollouts", ro)
    get_driver(env).set_weight(release, 10)
    assert kube.writes() == [
        _status_patch({"status": {"pauseConditions": None, "currentStepIndex": 1}}),
        _rollout_patch({"spec": {"paused": False}}),
    ]

    ro = rollout(currentPodHash="bbb")
    ro["spec"]["strategy"]["canary"]["steps"] = []
    del ro["status"]["currentStepIndex"]
    ro["spec"]["paused"] = True
    kube.put(ARGO, NS, "rollouts", ro)
    since = len(kube.requests)
    get_driver(env).set_weight(release, 10)
    assert kube.writes(since) == [_rollout_patch({"spec": {"paused": False}})]

    kube.no_status.add("rollouts")
    ro = rollout(currentPodHash="bbb", currentStepIndex=1)
    ro["status"]["pauseConditions"] = [{"reason": "CanaryPauseStep"}]
    ro["spec"]["paused"] = True
    kube.put(ARGO, NS, "rollouts", ro)
    since = len(kube.requests)
    get_driver(env).set_weight(release, 50)
    assert kube.writes(since) == [
        _status_patch({"status": {"pauseConditions": None}}),  # answered 404
        _rollout_patch({"spec": {"paused": False}, "status": {"pauseConditions": None}}),
    ]
    stored = kube.get(ARGO, NS, "rollouts", "playback-api")
    assert "pauseConditions" not in stored["status"] and stored["spec"]["paused"] is False


def test_argo_rollout_scales_through_its_scale_subresource(kube, playback_api):
    """``kubectl scale rollout/<name> --replicas=N``: a merge patch of the ``scale``
    subresource (the Rollout CRD declares one)."""
    kube.put(ARGO, NS, "rollouts", rollout())
    env = _env(kube, "argo", "argo-rollouts", **IMAGE)
    get_driver(env).scale(playback_api, 7)
    assert kube.writes() == [
        {
            "method": "PATCH",
            "path": f"/{ARGO}/namespaces/{NS}/rollouts/playback-api/scale",
            "content_type": "application/merge-patch+json",
            "body": {"spec": {"replicas": 7}},
        }
    ]
    assert kube.get(ARGO, NS, "rollouts", "playback-api")["spec"]["replicas"] == 7


def test_argo_status_mirrors_steps_and_analysis_runs(kube, playback_api):
    kube.put(
        ARGO,
        NS,
        "rollouts",
        rollout(
            phase="Degraded",
            message="RolloutAborted: metric error-rate failed",
            currentStepIndex=2,
            abort=True,
            conditions=[
                {
                    "type": "Progressing",
                    "status": "False",
                    "reason": "ProgressDeadlineExceeded",
                    "message": "Rollout exceeded its progress deadline",
                }
            ],
        ),
    )
    kube.put(
        ARGO,
        NS,
        "analysisruns",
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "AnalysisRun",
            "metadata": {
                "name": "playback-api-bbb-2",
                "ownerReferences": [{"kind": "Rollout", "name": "playback-api"}],
            },
            "status": {
                "phase": "Failed",
                "message": "metric failed",
                "metricResults": [
                    {"name": "error-rate", "phase": "Failed", "successful": 1, "failed": 3}
                ],
            },
        },
    )
    kube.put(
        ARGO,
        NS,
        "analysisruns",
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "AnalysisRun",
            "metadata": {
                "name": "other-run",
                "ownerReferences": [{"kind": "Rollout", "name": "other"}],
            },
            "status": {"phase": "Successful"},
        },
    )
    env = _env(kube, "argo", "argo-rollouts", **IMAGE)
    st = get_driver(env).status(Release(service=playback_api, environment=env, version="2.0"))
    assert st.weight == 0 and not st.healthy
    assert st.detail["phase"] == "Degraded" and st.detail["aborted"]
    assert st.detail["stuck"] == "Rollout exceeded its progress deadline"
    assert [a["name"] for a in st.detail["analysis_runs"]] == ["playback-api-bbb-2"]
    assert st.detail["analysis_runs"][0]["metrics"][0]["failed"] == 3
