"""The ``argo-rollouts`` deploy driver: Backline in front of an Argo Rollouts ``Rollout``.

For teams that already run Argo Rollouts: the Rollout keeps its own canary steps, traffic router
and AnalysisTemplates; Backline starts it, promotes, aborts and retries it with the same API
calls the ``kubectl argo rollouts`` plugin makes, with Backline's squad permissions and audit in
front, and mirrors its phase, steps, weight and AnalysisRuns onto the release page.

``driver_config``: ``kubeconfig`` + ``context`` (or ``in_cluster``), ``namespace``,
``rollout`` (default ``{service}``), ``container`` (default: every container, like
``set image <rollout> *=<image>``), ``image`` (``{service}``, ``{version}``).

- start / ``set_weight`` of a new version: ``set image`` — read the Rollout, change the
  container images, write it back with its ``resourceVersion`` (a 409 is read again and
  retried, five attempts, as the plugin does).
- ``set_weight(w)`` when the Rollout already runs the version and is paused below ``w``: the
  plugin's ``promote`` (status subresource merge patch ``{"status":{"pauseConditions":null}}``
  when it has pause conditions, else the next ``currentStepIndex``; ``{"spec":{"paused":false}}``
  when the spec is paused).
- ``promote``: ``promote --full`` (``{"status":{"promoteFull":true}}``).
- ``rollback``: ``abort`` (``{"status":{"abort":true}}``); ``retry``: ``{"status":{"abort":false}}``.
  Status patches fall back to the main resource on a 404, for Rollouts before v0.10.
"""

from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from releases.drivers import DriverError, DriverStatus
from releases.kubernetes import (
    MERGE,
    KubeDriver,
    api_error,
    call,
    pods_of,
    retry_conflicts,
    stuck_reason,
)

GROUP, VERSION, ROLLOUTS, ANALYSISRUNS = "argoproj.io", "v1alpha1", "rollouts", "analysisruns"


def canary_steps(ro: dict) -> list[dict]:
    return ((ro.get("spec") or {}).get("strategy") or {}).get("canary", {}).get("steps") or []


def current_weight(ro: dict) -> int | None:
    status = ro.get("status") or {}
    weights = (status.get("canary") or {}).get("weights") or {}
    if "canary" in weights:
        return int(weights["canary"].get("weight") or 0)
    if status.get("abort"):
        return 0
    steps, index = canary_steps(ro), status.get("currentStepIndex")
    if index is None:
        return None
    if index >= len(steps):
        return 100
    passed = [s["setWeight"] for s in steps[: index + 1] if "setWeight" in s]
    return int(passed[-1]) if passed else 0


def current_step_index(ro: dict) -> int | None:
    """The plugin's ``GetCurrentCanaryStep``: ``None`` without canary steps, else the status's
    index (0 when unset)."""
    if not canary_steps(ro):
        return None
    return int((ro.get("status") or {}).get("currentStepIndex") or 0)


def promote_patches(ro: dict) -> tuple[dict | None, dict | None]:
    """(spec patch, status patch) of ``kubectl argo rollouts promote`` (no flags): unpause the
    spec when it is paused; clear the pause conditions when there are some, else move a canary
    with steps to its next step (never both)."""
    spec_patch = {"spec": {"paused": False}} if (ro.get("spec") or {}).get("paused") else None
    status_patch: dict[str, Any] | None = None
    if (ro.get("status") or {}).get("pauseConditions"):
        status_patch = {"status": {"pauseConditions": None}}
    elif ((ro.get("spec") or {}).get("strategy") or {}).get("canary") is not None:
        index = current_step_index(ro)
        if index is not None:
            index = min(index + 1, len(canary_steps(ro)))
            status_patch = {"status": {"pauseConditions": None, "currentStepIndex": index}}
    return spec_patch, status_patch


class ArgoRolloutsDriver(KubeDriver):
    name = "argo-rollouts"
    observes = True

    def _custom(self) -> k8s.CustomObjectsApi:
        return k8s.CustomObjectsApi(self.api_client())

    def _where(self, release) -> tuple[str, str]:
        return self.namespace(release), self.name_of("rollout", release, "{service}")

    def _get(self, custom, ns, name) -> dict:
        return call(
            lambda: custom.get_namespaced_custom_object(GROUP, VERSION, ns, ROLLOUTS, name),
            f"read Rollout {ns}/{name}",
        )

    def _images(self, ro: dict) -> list[str]:
        wanted = self.config.get("container")
        pod = ro.get("spec", {}).get("template", {}).get("spec", {})
        return [
            c.get("image")
            for c in pod.get("containers") or []
            if not wanted or c.get("name") == wanted
        ]

    def set_image(self, release) -> None:
        custom, (ns, name) = self._custom(), self._where(release)
        image, wanted = self.image_of(release), self.config.get("container")

        def update():
            ro = custom.get_namespaced_custom_object(GROUP, VERSION, ns, ROLLOUTS, name)
            found = False
            pod = ro.get("spec", {}).get("template", {}).get("spec", {})
            for key in ("initContainers", "containers", "ephemeralContainers"):
                for c in pod.get(key) or []:
                    if not wanted or c.get("name") == wanted:
                        c["image"], found = image, True
            if not found:
                raise DriverError(f'Rollout {ns}/{name}: unable to find container named "{wanted}"')
            custom.replace_namespaced_custom_object(GROUP, VERSION, ns, ROLLOUTS, name, ro)

        retry_conflicts(update, f"set image of Rollout {ns}/{name}")

    def _patch(self, custom, ns, name, body: dict, *, status: bool, what: str) -> None:
        try:
            if status:
                custom.patch_namespaced_custom_object_status(
                    GROUP, VERSION, ns, ROLLOUTS, name, body, _content_type=MERGE
                )
            else:
                custom.patch_namespaced_custom_object(
                    GROUP, VERSION, ns, ROLLOUTS, name, body, _content_type=MERGE
                )
        except ApiException as exc:
            if status and exc.status == 404:  # Rollouts before v0.10: no status subresource
                self._patch(custom, ns, name, body, status=False, what=what)
                return
            raise api_error(exc, what) from exc

    def promote_step(self, custom, ns, name, ro: dict) -> None:
        """``kubectl argo rollouts promote <name>``: the status patch first, then the spec's;
        a Rollout without the status subresource (before v0.10) gets both as one patch."""
        spec_patch, status_patch = promote_patches(ro)
        what = f"promote Rollout {ns}/{name}"
        if status_patch is not None:
            try:
                custom.patch_namespaced_custom_object_status(
                    GROUP, VERSION, ns, ROLLOUTS, name, status_patch, _content_type=MERGE
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise api_error(exc, what) from exc
                spec_patch = {**(spec_patch or {}), **status_patch}
        if spec_patch is not None:
            self._patch(custom, ns, name, spec_patch, status=False, what=what)

    def set_weight(self, release, weight: int) -> None:
        custom, (ns, name) = self._custom(), self._where(release)
        ro = self._get(custom, ns, name)
        if any(img != self.image_of(release) for img in self._images(ro)):
            self.set_image(release)  # starts the Rollout's own steps
            return
        status = ro.get("status") or {}
        paused = bool(status.get("pauseConditions")) or bool(ro.get("spec", {}).get("paused"))
        now = current_weight(ro)
        if weight and paused and (now is None or now < weight):
            self.promote_step(custom, ns, name, ro)

    def promote(self, release) -> None:
        custom, (ns, name) = self._custom(), self._where(release)
        ro = self._get(custom, ns, name)
        status = ro.get("status") or {}
        if status.get("currentPodHash") != status.get("stableRS"):  # `promote --full`
            self._set_status(custom, ns, name, {"promoteFull": True}, "fully promote")

    def _set_status(self, custom, ns, name, patch: dict, verb: str) -> None:
        """What `kubectl argo rollouts` does for promote --full / abort / retry: a patch of
        the Rollout's status subresource."""
        what = f"{verb} Rollout {ns}/{name}"
        self._patch(custom, ns, name, {"status": patch}, status=True, what=what)

    def rollback(self, release) -> None:
        custom, (ns, name) = self._custom(), self._where(release)
        self._set_status(custom, ns, name, {"abort": True}, "abort")

    def retry(self, release) -> None:
        custom, (ns, name) = self._custom(), self._where(release)
        self._set_status(custom, ns, name, {"abort": False}, "retry")

    def _analysis_runs(self, custom, ns, name) -> list[dict]:
        listed = call(
            lambda: custom.list_namespaced_custom_object(GROUP, VERSION, ns, ANALYSISRUNS),
            f"list AnalysisRuns in {ns}",
        )
        runs = []
        for run in listed.get("items") or []:
            owners = run.get("metadata", {}).get("ownerReferences") or []
            if not any(o.get("kind") == "Rollout" and o.get("name") == name for o in owners):
                continue
            runs.append(
                {
                    "name": run["metadata"].get("name"),
                    "phase": (run.get("status") or {}).get("phase", ""),
                    "message": (run.get("status") or {}).get("message", ""),
                    "metrics": [
                        {k: m.get(k) for k in ("name", "phase", "successful", "failed")}
                        for m in (run.get("status") or {}).get("metricResults") or []
                    ],
                }
            )
        return runs

    def status(self, release) -> DriverStatus:
        custom, (ns, name) = self._custom(), self._where(release)
        ro = self._get(custom, ns, name)
        status = ro.get("status") or {}
        stuck = stuck_reason(ro)
        detail = {
            "namespace": ns,
            "rollout": name,
            "phase": status.get("phase", ""),
            "message": status.get("message", ""),
            "step": status.get("currentStepIndex"),
            "steps": canary_steps(ro),
            "paused": bool(status.get("pauseConditions")),
            "aborted": bool(status.get("abort")),
            "replicas": status.get("replicas"),
            "ready": status.get("readyReplicas"),
            "updated": status.get("updatedReplicas"),
            "images": self._images(ro),
            "analysis_runs": self._analysis_runs(custom, ns, name),
            "stuck": stuck,
        }
        healthy = status.get("phase") in ("Healthy", "Paused", "Progressing") and not stuck
        return DriverStatus(weight=current_weight(ro), healthy=healthy, detail=detail)

    scales = True

    def scale(self, service, replicas: int) -> None:
        # what `kubectl scale rollout/<name> --replicas=N` sends: the scale subresource
        custom, (ns, name) = self._custom(), self._where(service)
        call(
            lambda: custom.patch_namespaced_custom_object_scale(
                GROUP,
                VERSION,
                ns,
                ROLLOUTS,
                name,
                {"spec": {"replicas": int(replicas)}},
                _content_type=MERGE,
            ),
            f"scale Rollout {ns}/{name}",
        )

    def runtime(self, service) -> dict:
        custom, (ns, name) = self._custom(), self._where(service)
        ro = self._get(custom, ns, name)
        status = ro.get("status") or {}
        selector = (ro.get("spec") or {}).get("selector", {}).get("matchLabels") or {}
        stable_hash = status.get("stableRS")
        instances = []
        for pod in pods_of(custom.api_client, ns, selector):
            instances.append(pod)
        return {
            "kind": "argo-rollouts",
            "location": f"namespace {ns}, Rollout {name}",
            "phase": status.get("phase", ""),
            "step": status.get("currentStepIndex"),
            "steps": canary_steps(ro),
            "weight": current_weight(ro),
            "stable_rs": stable_hash,
            "instances": instances,
            "replicas": status.get("replicas"),
            "ready": status.get("readyReplicas"),
        }
