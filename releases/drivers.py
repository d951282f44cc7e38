"""Deploy drivers: how Backline moves traffic. One small interface, chosen per environment.

``set_weight(release, weight)``: send ``weight`` % of the traffic to the release's version (the
canary), the rest to stable. ``promote(release)``: the canary becomes the new stable (all
traffic on the new version). ``rollback(release)``: all traffic back to stable, canary removed.
``status(release)``: what the deployer reports now. Every call is idempotent (the controller
repeats a call whose outcome it did not get to record) and raises ``DriverError`` on failure,
which leaves the release where it was; the controller tries again later.

A Kubernetes / Argo Rollouts driver fits the same shape: ``set_weight`` patches the Rollout's
canary weight (or the traffic router), ``promote`` sets the stable ReplicaSet to the canary's,
``rollback`` aborts, ``status`` reads the Rollout's status.

- ``local`` (the demo): the demo fleet (``monitoring.fleet``) runs stable and canary processes
  of a service; the driver writes the canary weight to ``VAR_DIR/fleet-weights/<slug>``, which
  the fleet's traffic generator reads, and sets the canary process's behaviour through its
  ``/control`` endpoint (``deploy_params`` of the release: ``error_rate``, ``latency_ms``;
  by default the stable's behaviour).
- ``webhook``: a signed JSON POST per call to an external deployer (``driver_config``: ``url``,
  ``secret``, ``timeout`` seconds, ``retries``), signed like Backline's outbound events.
"""

import json
import os
import time
import uuid
from dataclasses import dataclass, field

import requests
from django.conf import settings

from portal.events import sign


class DriverError(Exception):
    """The deployer did not confirm the change. The release does not advance."""


@dataclass
class DriverStatus:
    weight: int | None
    healthy: bool | None = None
    detail: dict = field(default_factory=dict)


class DeployDriver:
    name = "base"

    def __init__(self, environment):
        self.environment = environment
        self.config = environment.driver_config or {}

    def set_weight(self, release, weight: int) -> None:
        raise NotImplementedError

    def promote(self, release) -> None:
        raise NotImplementedError

    def rollback(self, release) -> None:
        raise NotImplementedError

    def status(self, release) -> DriverStatus:
        raise NotImplementedError


# --- local: the demo fleet ---------------------------------------------------------------------
def weights_dir():
    from monitoring.fleet import WEIGHTS_SUBDIR

    return settings.VAR_DIR / WEIGHTS_SUBDIR


def write_weight(slug: str, weight: int):
    d = weights_dir()
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f".{slug}.{os.getpid()}.tmp"
    tmp.write_text(str(int(weight)))
    os.replace(tmp, d / slug)


def read_weight(slug: str) -> int | None:
    try:
        return int((weights_dir() / slug).read_text().strip())
    except (OSError, ValueError):
        return None


class LocalDriver(DeployDriver):
    name = "local"
    timeout = 2.0

    def _instances(self, service) -> dict:
        """{track: base_url} from the service's registered /metrics URLs."""
        out = {}
        for entry in service.metrics_urls or []:
            if isinstance(entry, dict) and entry.get("track") and entry.get("url"):
                url = entry["url"]
                out[entry["track"]] = url[: -len("/metrics")] if url.endswith("/metrics") else url
        return out

    def _control(self, base, body) -> dict:
        try:
            resp = requests.post(f"{base}/control", json=body, timeout=self.timeout)
            resp.raise_for_status()
            return resp.json()
        except (requests.RequestException, ValueError) as exc:
            raise DriverError(f"demo fleet instance {base} did not answer: {exc}") from exc

    def _need(self, release):
        inst = self._instances(release.service)
        if "canary" not in inst or "stable" not in inst:
            raise DriverError(
                f"{release.service.slug} has no stable and canary instances registered "
                "(metrics_urls with track stable/canary): is the demo fleet running?"
            )
        return inst

    def _deploy_canary(self, release, inst):
        """Make the canary process behave like the release's version."""
        stable = self._control(inst["stable"], {})
        params = release.deploy_params or {}
        body = {
            "error_rate": params.get("error_rate", stable.get("error_rate")),
            "latency_ms": params.get("latency_ms", stable.get("latency_ms")),
        }
        self._control(inst["canary"], body)

    def set_weight(self, release, weight):
        inst = self._need(release)
        self._deploy_canary(release, inst)
        write_weight(release.service.slug, weight)

    def promote(self, release):
        inst = self._need(release)
        canary = self._control(inst["canary"], {})
        # the new version becomes stable; the canary slot idles at 0 %
        self._control(
            inst["stable"],
            {"error_rate": canary.get("error_rate"), "latency_ms": canary.get("latency_ms")},
        )
        write_weight(release.service.slug, 0)

    def rollback(self, release):
        write_weight(release.service.slug, 0)  # traffic first, at once
        inst = self._instances(release.service)
        if "canary" in inst and "stable" in inst:
            stable = self._control(inst["stable"], {})
            self._control(
                inst["canary"],
                {"error_rate": stable.get("error_rate"), "latency_ms": stable.get("latency_ms")},
            )

    def status(self, release):
        weight = read_weight(release.service.slug)
        healthy = True
        detail = {}
        for track, base in self._instances(release.service).items():
            try:
                ok = requests.get(f"{base}/healthz", timeout=self.timeout).ok
            except requests.RequestException:
                ok = False
            detail[track] = "up" if ok else "down"
            healthy = healthy and ok
        return DriverStatus(weight=weight, healthy=healthy, detail=detail)


# --- webhook: any external deployer ------------------------------------------------------------
class WebhookDriver(DeployDriver):
    """POST ``{"action", "weight", "release": {...}}`` to ``driver_config.url``.

    Headers as Backline's outbound events: ``X-Backline-Event: deploy.<action>``,
    ``X-Backline-Delivery`` (the same on every retry of one call), ``X-Backline-Timestamp``,
    ``X-Backline-Signature: sha256=HMAC(secret, "{timestamp}.{body}")``. A 2xx answer confirms
    the change; a timeout, connection error or any other status is retried (``retries`` extra
    attempts, backoff 0.2 s, 0.4 s, …) and finally raises ``DriverError``. ``status`` expects
    ``{"weight": N, "healthy": bool}`` in the answer.
    """

    name = "webhook"

    def _call(self, release, action, weight=None) -> dict:
        url = self.config.get("url")
        if not url:
            raise DriverError(f"environment {self.environment.name} has no webhook url")
        secret = str(self.config.get("secret") or "")
        timeout = float(self.config.get("timeout") or 5.0)
        retries = int(self.config.get("retries") if self.config.get("retries") is not None else 2)
        payload = {
            "action": action,
            "weight": weight,
            "release": {
                "id": release.pk,
                "service": release.service.slug,
                "version": release.version,
                "commit": release.commit_sha,
                "environment": self.environment.name,
            },
        }
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        delivery = str(uuid.uuid4())
        last = ""
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(min(0.2 * 2 ** (attempt - 1), 5.0))
            ts = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "X-Backline-Event": f"deploy.{action}",
                "X-Backline-Delivery": delivery,
                "X-Backline-Timestamp": ts,
                "X-Backline-Signature": sign(secret, ts, body),
            }
            try:
                resp = requests.post(url, data=body, headers=headers, timeout=timeout)
            except requests.Timeout:
                last = f"timed out after {timeout:g} s"
                continue
            except requests.RequestException as exc:
                last = f"{type(exc).__name__}: {exc}"[:300]
                continue
            if 200 <= resp.status_code < 300:
                try:
                    return resp.json() if resp.content else {}
                except ValueError:
                    return {}
            last = f"HTTP {resp.status_code}: {resp.text[:200]}"
        raise DriverError(
            f"deployer webhook {action} failed after {retries + 1} attempt(s): {last}"
        )

    def set_weight(self, release, weight):
        self._call(release, "set_weight", weight)

    def promote(self, release):
        self._call(release, "promote", 100)

    def rollback(self, release):
        self._call(release, "rollback", 0)

    def status(self, release):
        data = self._call(release, "status")
        return DriverStatus(weight=data.get("weight"), healthy=data.get("healthy"), detail=data)


DRIVERS = {"local": LocalDriver, "webhook": WebhookDriver}


def get_driver(environment) -> DeployDriver:
    try:
        return DRIVERS[environment.driver](environment)
    except KeyError:
        raise DriverError(f"unknown deploy driver {environment.driver!r}") from None
