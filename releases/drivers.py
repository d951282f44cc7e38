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
  ``secret``, ``timeout`` seconds, ``retries``), sent by the outbound delivery service.

The controller never calls a driver inside the release's row lock: it records the wanted call
(``Release.driver_call``) and, after commit, ``controller.sync`` hands it to ``apply`` (a
driver that answers at once, like ``local``) or ``request`` (``confirms_later``: the webhook,
confirmed when its outbound delivery lands).
"""

import json
import os
from dataclasses import dataclass, field

from django.conf import settings

from monitoring.fleet import WEIGHTS_SUBDIR
from portal import outbound, urlguard

DEPLOY_KIND = "deploy"


class DriverError(Exception):
    """The deployer did not confirm the change. The release does not advance."""


@dataclass
class DriverStatus:
    weight: int | None
    healthy: bool | None = None
    detail: dict = field(default_factory=dict)


class DeployDriver:
    name = "base"
    confirms_later = False  # True: request() sends, the outcome arrives later
    observes = False  # True: status() is worth mirroring onto the release (beat, after calls)

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

    scales = False  # True: scale() and runtime() work (the service page's Runtime panel)

    def scale(self, service, replicas: int) -> None:
        """Run ``replicas`` instances of ``service``'s stable track; raises ``DriverError``."""
        raise DriverError(f"the {self.name} driver cannot scale")

    def max_replicas(self, service) -> int | None:
        """The most ``scale`` can run (HAProxy: the servers named), or None for no limit."""
        return None

    def runtime(self, service) -> dict:
        """Where ``service`` runs and what runs there now: {"kind", "location", "tracks",
        "instances": [...]} for the Runtime panel; raises ``DriverError``."""
        raise DriverError(f"the {self.name} driver reports no runtime")

    def apply(self, release, call: dict) -> None:
        """Make the wanted call (``{"action", "weight"}``) now; raises ``DriverError``."""
        if call["action"] == "set_weight":
            self.set_weight(release, call["weight"])
        elif call["action"] == "promote":
            self.promote(release)
        elif call["action"] == "rollback":
            self.rollback(release)
        else:
            raise DriverError(f"unknown driver action {call['action']!r}")

    def request(self, release, call: dict):
        raise NotImplementedError


# --- local: the demo fleet ---------------------------------------------------------------------
def weights_dir():
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
            resp = urlguard.request(
                "POST",
                f"{base}/control",
                use="webhook",
                body=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
                timeout=self.timeout,
                max_bytes=outbound.MAX_ANSWER_BYTES,
            )
            if not resp.ok:
                raise DriverError(f"demo fleet instance {base} answered HTTP {resp.status_code}")
            return resp.json()
        except (urlguard.FetchError, ValueError) as exc:
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
                ok = urlguard.request(
                    "GET", f"{base}/healthz", use="scrape", timeout=self.timeout, max_bytes=4096
                ).ok
            except urlguard.FetchError:
                ok = False
            detail[track] = "up" if ok else "down"
            healthy = healthy and ok
        return DriverStatus(weight=weight, healthy=healthy, detail=detail)


# --- webhook: any external deployer ------------------------------------------------------------
class WebhookDriver(DeployDriver):
    """POST ``{"action", "weight", "call", "release": {...}}`` to ``driver_config.url``.

    Signed like every Backline webhook (``portal.outbound``): ``X-Backline-Event:
    deploy.<action>``, ``X-Backline-Delivery`` (the same on every retry of one call),
    ``X-Backline-Signature: t=<unix>,v1=<HMAC>``. ``call`` names the wanted state: the same
    ``call`` twice is the same change. A 2xx answer confirms the change. The controller's calls
    (``request``) go through the outbound delivery service: retried with backoff
    (``retries`` extra attempts, each with ``timeout`` seconds) by Celery, never in a row
    lock; the release confirms when the delivery lands. ``set_weight`` / ``promote`` /
    ``rollback`` / ``status`` called directly make one signed POST and raise ``DriverError``;
    ``status`` expects ``{"weight": N, "healthy": bool}`` in the answer.
    """

    name = "webhook"
    confirms_later = True

    def _settings(self):
        url = self.config.get("url")
        if not url:
            raise DriverError(f"environment {self.environment.name} has no webhook url")
        retries = self.config.get("retries")
        return (
            url,
            str(self.config.get("secret") or ""),
            float(self.config.get("timeout") or 5.0),
            int(retries if retries is not None else 2),
        )

    def payload(self, release, action, weight=None, call_id=None) -> dict:
        return {
            "action": action,
            "weight": weight,
            "call": call_id,
            "release": {
                "id": release.pk,
                "service": release.service.slug,
                "version": release.version,
                "commit": release.commit_sha,
                "environment": self.environment.name,
            },
        }

    def _call(self, release, action, weight=None) -> dict:
        url, secret, timeout, _ = self._settings()
        payload = self.payload(release, action, weight)
        try:
            resp = outbound.post_signed(
                url, payload, secret, event_type=f"deploy.{action}", timeout=timeout
            )
        except urlguard.Timeout:
            raise DriverError(f"deployer webhook {action}: timed out after {timeout:g} s") from None
        except urlguard.FetchError as exc:
            raise DriverError(f"deployer webhook {action}: {exc}") from exc
        if not resp.ok:  # the deployer's answer is not quoted: release pages show this
            raise DriverError(f"deployer webhook {action} failed: HTTP {resp.status_code}")
        try:
            return resp.json() if resp.content else {}
        except ValueError:
            return {}

    def request(self, release, call: dict):
        """Send the wanted call through the outbound service (idempotent per call id); the
        ``deploy`` sender confirms it on the release when it lands or fails for good."""
        url, _, timeout, retries = self._settings()
        ref = f"release:{release.pk}"
        key = f"{ref}:{call['id']}"
        outbound.cancel_open(ref, kind=DEPLOY_KIND, keep_key=key)  # superseded calls
        if outbound.in_flight(ref, kind=DEPLOY_KIND, exclude_key=key):
            return None  # an older call is still on the wire: keep the order, try again later
        return outbound.deliver(
            DEPLOY_KIND,
            url,
            self.payload(release, call["action"], call["weight"], call["id"]),
            event_type=f"deploy.{call['action']}",
            ref=ref,
            key=key,
            max_attempts=retries + 1,
            timeout=timeout,
            send_now=True,
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


DRIVERS: dict[str, type[DeployDriver]] = {"local": LocalDriver, "webhook": WebhookDriver}


def register_driver(cls: type[DeployDriver]) -> None:
    """Make ``cls`` choosable as ``Environment.driver`` (``cls.name``); called by ``ready()``."""
    DRIVERS[cls.name] = cls


def get_driver(environment) -> DeployDriver:
    try:
        return DRIVERS[environment.driver](environment)
    except KeyError:
        raise DriverError(f"unknown deploy driver {environment.driver!r}") from None
