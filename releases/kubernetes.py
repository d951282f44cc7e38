"""The ``kubernetes`` deploy driver: stable and canary Deployments, weights on a Gateway API
``HTTPRoute`` (or, without a route, a replica ratio). Uses the official ``kubernetes`` client.

``driver_config`` (strings may use ``{service}``; ``image`` also ``{version}``)::

    {"kubeconfig": "/etc/backline/kubeconfig", "context": "prod",   # or "in_cluster": true
     "namespace": "apps", "deployment": "{service}", "canary_deployment": "{service}-canary",
     "container": "app", "image": "registry.example.com/{service}:{version}",
     "route": "{service}",                  # an HTTPRoute with both Services as backendRefs
     "stable_service": "{service}", "canary_service": "{service}-canary",
     "progress_deadline": 600}

- ``set_weight(w)``: the canary Deployment gets the release's image (the strategic-merge patch
  ``kubectl set image`` sends) and replicas; with a route the two backendRefs' weights become
  ``100 - w`` / ``w`` (read, changed, written back with its ``resourceVersion``: a 409 from a
  concurrent writer is read again and retried); without one, the canary runs
  ``round(total × w / 100)`` of the total replicas and stable the rest (the ``scale``
  subresource, as ``kubectl scale`` does), the canary scaled up before stable goes down.
- ``promote``: the stable Deployment takes the canary's image, traffic all to stable, canary 0.
- ``rollback``: traffic back to stable first, stable at full size, canary scaled to 0.
- ``status``: observed generation, ready replicas per track, conditions, route weights; a
  Deployment whose ``Progressing`` condition says ``ProgressDeadlineExceeded`` is *stuck*, and
  the release pauses with that reason.

Kubernetes API errors become ``DriverError`` with the API's own message, so the release page
shows it; every call is idempotent, so a half-applied change is finished by the next attempt.
"""

import json
import math
import re
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from urllib3 import Timeout
from urllib3.exceptions import HTTPError

from releases.drivers import DeployDriver, DriverError, DriverStatus

STRATEGIC = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
GATEWAY = ("gateway.networking.k8s.io", "v1", "httproutes")
CONFLICT_ATTEMPTS = 5
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,254}$")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def api_error(exc: Exception, what: str) -> DriverError:
    if isinstance(exc, ApiException):
        message = exc.reason or ""
        try:
            message = json.loads(exc.body or "{}").get("message") or message
        except (ValueError, AttributeError):
            pass
        return DriverError(f"Kubernetes {what}: HTTP {exc.status}: {message}"[:500])
    return DriverError(f"Kubernetes {what}: {type(exc).__name__}: {exc}"[:500])


def retry_conflicts(fn: Callable[[], Any], what: str) -> Any:
    """Run a read-modify-write ``fn``; a 409 (someone wrote in between) is read again."""
    for attempt in range(CONFLICT_ATTEMPTS):
        try:
            return fn()
        except ApiException as exc:
            if exc.status == 409 and attempt < CONFLICT_ATTEMPTS - 1:
                time.sleep(0.05 * (attempt + 1))
                continue
            raise api_error(exc, what) from exc
        except (HTTPError, OSError) as exc:
            raise api_error(exc, what) from exc
    raise DriverError(f"Kubernetes {what}: still conflicting after {CONFLICT_ATTEMPTS} attempts")


def call(fn: Callable[[], Any], what: str) -> Any:
    try:
        return fn()
    except (ApiException, HTTPError, OSError) as exc:
        raise api_error(exc, what) from exc


class KubeDriver(DeployDriver):
    """What both Kubernetes drivers share: the client, names, images."""

    def api_client(self) -> k8s.ApiClient:
        api = self._api_client()
        # every call bounded (the client has no timeout by default): connect + read
        api.rest_client.pool_manager.connection_pool_kw["timeout"] = Timeout(
            total=float(self.config.get("timeout") or 10.0)
        )
        return api

    def _api_client(self) -> k8s.ApiClient:
        cfg = self.config
        try:
            if cfg.get("in_cluster"):
                configuration = k8s.Configuration()
                k8s_config.load_incluster_config(client_configuration=configuration)
                return k8s.ApiClient(configuration)
            if not cfg.get("kubeconfig"):
                raise DriverError(
                    f"environment {self.environment.name}: driver_config needs kubeconfig "
                    "or in_cluster"
                )
            return k8s_config.new_client_from_config(
                config_file=str(cfg["kubeconfig"]), context=cfg.get("context") or None
            )
        except (k8s_config.ConfigException, OSError, ValueError) as exc:
            raise DriverError(f"Kubernetes configuration: {exc}") from exc

    def name_of(self, key: str, release_or_service, default: str | None = None) -> str:
        service = getattr(release_or_service, "service", release_or_service)
        raw = self.config.get(key) or default
        if not raw:
            raise DriverError(f"environment {self.environment.name}: driver_config lacks {key}")
        value = str(raw).replace("{service}", service.slug)
        if not _NAME.match(value):
            raise DriverError(f"driver_config {key} {value!r} is not a Kubernetes name")
        return value

    def namespace(self, release_or_service) -> str:
        return self.name_of("namespace", release_or_service, "default")

    def image_of(self, release) -> str:
        params = release.deploy_params or {}
        template = params.get("image") or self.config.get("image")
        if not template:
            raise DriverError(
                "no image: set driver_config.image or the release's deploy_params.image"
            )
        image = str(template).replace("{service}", release.service.slug)
        image = image.replace("{version}", release.version)
        if not _IMAGE.match(image):
            raise DriverError(f"image {image!r} is not a container image reference")
        return image


def container_image(obj: dict, container: str | None) -> str | None:
    containers = obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    for c in containers:
        if container is None or c.get("name") == container:
            return c.get("image")
    return None


def pods_of(api_client, ns: str, selector: dict) -> list[dict]:
    """The pods a workload's ``spec.selector.matchLabels`` selects: name, phase, ready,
    restarts, image (what ``kubectl get pods -l`` lists)."""
    labels = ",".join(f"{k}={v}" for k, v in sorted((selector or {}).items()))
    if not labels:
        return []
    core = k8s.CoreV1Api(api_client)
    listed = call(
        lambda: api_client.sanitize_for_serialization(
            core.list_namespaced_pod(ns, label_selector=labels)
        ),
        f"list pods in {ns}",
    )
    pods = []
    for pod in listed.get("items") or []:
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        pods.append(
            {
                "name": pod["metadata"]["name"],
                "phase": (pod.get("status") or {}).get("phase", ""),
                "ready": bool(statuses) and all(c.get("ready") for c in statuses),
                "restarts": sum(int(c.get("restartCount") or 0) for c in statuses),
                "image": (statuses[0].get("image") if statuses else "")
                or container_image({"spec": {"template": pod}}, None),
            }
        )
    return pods


def stuck_reason(obj: dict) -> str:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return cond.get("message") or "progress deadline exceeded"
    return ""


class KubernetesDriver(KubeDriver):
    name = "kubernetes"
    observes = True

    def _apps(self) -> k8s.AppsV1Api:
        return k8s.AppsV1Api(self.api_client())

    def _deployment(self, apps, ns, name) -> dict:
        return call(
            lambda: apps.api_client.sanitize_for_serialization(
                apps.read_namespaced_deployment(name, ns)
            ),
            f"read deployment {ns}/{name}",
        )

    def _container(self, deployment: dict) -> str:
        wanted = self.config.get("container")
        containers = deployment["spec"]["template"]["spec"].get("containers") or []
        if wanted:
            return str(wanted)
        if not containers:
            raise DriverError(f"deployment {deployment['metadata']['name']} has no containers")
        return containers[0]["name"]

    def _set_image(self, apps, ns, deployment: dict, container, image) -> None:
        """What `kubectl set image deployment/<name> <container>=<image>` sends: the two-way
        strategic merge patch of the change, which keeps the containers' order
        (``$setElementOrder/containers``) and names the changed one by its merge key."""
        name = deployment["metadata"]["name"]
        order = [
            {"name": c.get("name")}
            for c in deployment["spec"]["template"]["spec"].get("containers") or []
        ]
        changed = [{"image": image, "name": container}]
        pod_spec = {"$setElementOrder/containers": order, "containers": changed}
        body = {"spec": {"template": {"spec": pod_spec}}}
        call(
            lambda: apps.patch_namespaced_deployment(name, ns, body, _content_type=STRATEGIC),
            f"set image of deployment {ns}/{name}",
        )

    def _scale(self, apps, ns, name, replicas: int) -> None:
        # what `kubectl scale deployment/<name> --replicas=N` sends
        call(
            lambda: apps.patch_namespaced_deployment_scale(
                name, ns, {"spec": {"replicas": int(replicas)}}, _content_type=MERGE
            ),
            f"scale deployment {ns}/{name}",
        )

    def _route_weights(self, release, stable_weight: int, canary_weight: int) -> bool:
        if not self.config.get("route"):
            return False
        ns = self.namespace(release)
        route = self.name_of("route", release)
        names = {
            self.name_of("stable_service", release, "{service}"): stable_weight,
            self.name_of("canary_service", release, "{service}-canary"): canary_weight,
        }
        custom = k8s.CustomObjectsApi(self.api_client())
        group, version, plural = GATEWAY

        def write():
            obj = custom.get_namespaced_custom_object(group, version, ns, plural, route)
            rules = obj.get("spec", {}).get("rules") or []
            found = set()
            for rule in rules:
                for ref in rule.get("backendRefs") or []:
                    if ref.get("name") in names:
                        ref["weight"] = names[ref["name"]]
                        found.add(ref["name"])
            if found != set(names):
                missing = ", ".join(sorted(set(names) - found))
                raise DriverError(f"HTTPRoute {ns}/{route} has no backendRef for {missing}")
            body = {
                "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
                "spec": {"rules": rules},
            }
            custom.patch_namespaced_custom_object(
                group, version, ns, plural, route, body, _content_type=MERGE
            )

        retry_conflicts(write, f"set weights on HTTPRoute {ns}/{route}")
        return True

    def _names(self, release):
        """(namespace, stable Deployment, canary Deployment) for a release or a service."""
        ns = self.namespace(release)
        return (
            ns,
            self.name_of("deployment", release, "{service}"),
            self.name_of("canary_deployment", release, "{service}-canary"),
        )

    @staticmethod
    def _replicas(d: dict) -> int:
        return int((d.get("spec") or {}).get("replicas") or 0)

    def set_weight(self, release, weight: int) -> None:
        apps = self._apps()
        ns, stable_name, canary_name = self._names(release)
        stable = self._deployment(apps, ns, stable_name)
        canary = self._deployment(apps, ns, canary_name)
        image = self.image_of(release)
        container = self._container(canary)
        if container_image(canary, container) != image:
            self._set_image(apps, ns, canary, container, image)
        if self.config.get("route"):
            wanted = max(1, math.ceil(self._replicas(stable) * weight / 100)) if weight else 0
            if weight and self._replicas(canary) != wanted:
                self._scale(apps, ns, canary_name, wanted)
            self._route_weights(release, 100 - weight, weight)
            return
        total = self._replicas(stable) + self._replicas(canary)
        canary_n = round(total * weight / 100)
        if weight and not canary_n:
            canary_n = 1
        self._scale(apps, ns, canary_name, canary_n)  # up first
        self._scale(apps, ns, stable_name, max(total - canary_n, 0))

    def promote(self, release) -> None:
        apps = self._apps()
        ns, stable_name, canary_name = self._names(release)
        stable = self._deployment(apps, ns, stable_name)
        canary = self._deployment(apps, ns, canary_name)
        total = self._replicas(stable) + (0 if self.config.get("route") else self._replicas(canary))
        container = self._container(stable)
        image = container_image(canary, self._container(canary)) or self.image_of(release)
        if container_image(stable, container) != image:
            self._set_image(apps, ns, stable, container, image)
        if self._replicas(stable) != total:
            self._scale(apps, ns, stable_name, total)
        self._route_weights(release, 100, 0)
        self._scale(apps, ns, canary_name, 0)

    def rollback(self, release) -> None:
        apps = self._apps()
        ns, stable_name, canary_name = self._names(release)
        self._route_weights(release, 100, 0)  # traffic first
        if not self.config.get("route"):
            stable = self._deployment(apps, ns, stable_name)
            canary = self._deployment(apps, ns, canary_name)
            total = self._replicas(stable) + self._replicas(canary)
            self._scale(apps, ns, stable_name, total)
        self._scale(apps, ns, canary_name, 0)

    def track(self, d: dict) -> dict:
        status = d.get("status") or {}
        meta = d.get("metadata") or {}
        return {
            "name": meta.get("name"),
            "image": container_image(d, self.config.get("container")),
            "replicas": self._replicas(d),
            "ready": int(status.get("readyReplicas") or 0),
            "updated": int(status.get("updatedReplicas") or 0),
            "generation": meta.get("generation"),
            "observed_generation": status.get("observedGeneration"),
            "conditions": [
                {k: c.get(k) for k in ("type", "status", "reason", "message")}
                for c in status.get("conditions") or []
            ],
            "stuck": stuck_reason(d),
        }

    def status(self, release) -> DriverStatus:
        apps = self._apps()
        ns, stable_name, canary_name = self._names(release)
        tracks = {
            "stable": self.track(self._deployment(apps, ns, stable_name)),
            "canary": self.track(self._deployment(apps, ns, canary_name)),
        }
        weight = self._current_weight(release, tracks)
        healthy = all(t["ready"] >= t["replicas"] for t in tracks.values())
        stuck = next((f"{t['name']}: {t['stuck']}" for t in tracks.values() if t["stuck"]), "")
        detail = {"namespace": ns, "tracks": tracks, "stuck": stuck}
        return DriverStatus(weight=weight, healthy=healthy and not stuck, detail=detail)

    def _current_weight(self, release, tracks) -> int | None:
        if not self.config.get("route"):
            total = tracks["stable"]["replicas"] + tracks["canary"]["replicas"]
            return round(100 * tracks["canary"]["replicas"] / total) if total else None
        ns, route = self.namespace(release), self.name_of("route", release)
        custom = k8s.CustomObjectsApi(self.api_client())
        obj = call(
            lambda: custom.get_namespaced_custom_object(*GATEWAY[:2], ns, GATEWAY[2], route),
            f"read HTTPRoute {ns}/{route}",
        )
        canary = self.name_of("canary_service", release, "{service}-canary")
        for rule in obj.get("spec", {}).get("rules") or []:
            refs = rule.get("backendRefs") or []
            total = sum(int(r.get("weight", 1)) for r in refs)
            for ref in refs:
                if ref.get("name") == canary:
                    return round(100 * int(ref.get("weight", 1)) / total) if total else None
        return None

    scales = True

    def scale(self, service, replicas: int) -> None:
        apps = self._apps()
        ns, stable_name, _ = self._names(service)
        self._scale(apps, ns, stable_name, replicas)

    def runtime(self, service) -> dict:
        apps = self._apps()
        ns, stable_name, canary_name = self._names(service)
        tracks, instances = {}, []
        for track, name in (("stable", stable_name), ("canary", canary_name)):
            try:
                d = self._deployment(apps, ns, name)
            except DriverError:
                if track == "canary":
                    continue
                raise
            tracks[track] = self.track(d)
            selector = (d.get("spec") or {}).get("selector", {}).get("matchLabels") or {}
            for pod in pods_of(apps.api_client, ns, selector):
                instances.append({**pod, "track": track})
        return {
            "kind": "kubernetes",
            "location": f"namespace {ns}",
            "tracks": tracks,
            "instances": instances,
        }
