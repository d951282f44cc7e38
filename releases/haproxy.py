"""The ``haproxy`` deploy driver: canary weights through HAProxy's Runtime API.

For VM and bare-metal fleets behind an HAProxy load balancer. ``driver_config``::

    {"socket": "/run/haproxy/admin.sock",   # the admin stats socket (or "ipv4@host:port")
     "backend": "{service}",                # {service} is replaced by the service's slug
     "stable_server": "stable", "canary_server": "canary"}

``set_weight(release, w)`` sets the canary server's weight to ``round(256 × w / 100)`` and the
stable server's to the rest of 256 (``set server <backend>/<server> weight N``), always raising
one side before lowering the other, so the backend never has both at 0. ``promote`` moves the
stable server onto the canary's address (``set server … addr``: the stable slot now runs the new
version) and then takes the canary out (weight 0). ``rollback`` sends everything back to stable
at once. ``status`` reads ``show stat``: each server's weight, state and health check.

Putting the release's version on the canary host is the deployment's job (a pipeline step
before the ``release:`` step); a release may name where it runs with
``deploy_params.canary_address`` (``host:port``), which the driver sets on the canary server
before sending it traffic.
"""

import re
import socket
from dataclasses import dataclass

from releases.drivers import DeployDriver, DriverError, DriverStatus

MAX_WEIGHT = 256
# names HAProxy accepts for proxies and servers; anything else could smuggle a second command
_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
_ADDRESS = re.compile(
    r"^(?P<host>[A-Za-z0-9_.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]):(?P<port>\d{1,5})$"
)


def canary_weight(percent: int) -> int:
    return round(MAX_WEIGHT * max(0, min(100, int(percent))) / 100)


@dataclass
class RuntimeAPI:
    """One command per connection on HAProxy's admin socket (non-interactive mode)."""

    socket_path: str
    timeout: float = 3.0

    def _connect(self) -> socket.socket:
        if self.socket_path.startswith("ipv4@"):
            host, _, port = self.socket_path[5:].rpartition(":")
            return socket.create_connection((host, int(port)), timeout=self.timeout)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        return sock

    def command(self, line: str) -> str:
        if "\n" in line or "\r" in line or ";" in line:
            raise DriverError(f"refused HAProxy command with a separator: {line!r}")
        try:
            with self._connect() as sock:
                sock.sendall(line.encode() + b"\n")
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except (OSError, ValueError) as exc:
            raise DriverError(f"HAProxy runtime API at {self.socket_path}: {exc}") from exc
        return b"".join(chunks).decode(errors="replace")

    def change(self, line: str) -> None:
        """A command that answers nothing (or a newline) when it worked."""
        answer = self.command(line).strip()
        if answer and not answer.lower().startswith(("ok", "no need to change")):
            raise DriverError(f"HAProxy refused {line!r}: {answer[:200]}")

    def stat(self) -> list[dict[str, str]]:
        text = self.command("show stat")
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if not lines or not lines[0].startswith("# "):
            raise DriverError(f"HAProxy 'show stat' answered {text[:200]!r}")
        header = lines[0][2:].split(",")
        return [dict(zip(header, ln.split(","), strict=False)) for ln in lines[1:]]


class HAProxyDriver(DeployDriver):
    name = "haproxy"
    observes = True

    def _names(self, release) -> tuple[RuntimeAPI, str, str, str]:
        """(runtime API, backend, stable server, canary server) for a release or a service."""
        cfg = self.config
        missing = [
            k for k in ("socket", "backend", "stable_server", "canary_server") if not cfg.get(k)
        ]
        if missing:
            raise DriverError(
                f"environment {self.environment.name}: haproxy driver_config lacks "
                + ", ".join(missing)
            )
        slug = getattr(release, "service", release).slug
        names = [
            str(cfg[k]).replace("{service}", slug)
            for k in ("backend", "stable_server", "canary_server")
        ]
        for key, value in zip(("backend", "stable_server", "canary_server"), names, strict=True):
            if not _NAME.match(value):
                raise DriverError(f"haproxy driver_config {key} {value!r} is not a valid name")
        return RuntimeAPI(str(cfg["socket"]), float(cfg.get("timeout") or 3.0)), *names

    def _weights(self, api, backend, stable, canary, canary_w: int, current: int) -> None:
        """Move to ``canary_w`` from the canary's ``current`` weight (read once by the caller)."""
        stable_w = MAX_WEIGHT - canary_w
        first, second = (canary, stable) if canary_w >= current else (stable, canary)
        wanted = {canary: canary_w, stable: stable_w}
        for server in (first, second):  # raise one side before lowering the other
            api.change(f"set server {backend}/{server} weight {wanted[server]}")

    @staticmethod
    def _weight(row) -> int:
        try:
            return int(row.get("weight") or 0)
        except ValueError:
            return 0

    @staticmethod
    def _row(rows, backend, server) -> dict[str, str]:
        for row in rows:
            if row.get("pxname") == backend and row.get("svname") == server:
                return row
        raise DriverError(f"HAProxy has no server {backend}/{server}")

    def _place_canary(self, api, backend, canary, release) -> None:
        address = str((release.deploy_params or {}).get("canary_address") or "")
        if not address:
            return
        match = _ADDRESS.match(address)
        if not match:
            raise DriverError(f"deploy_params.canary_address {address!r} is not host:port")
        api.change(
            f"set server {backend}/{canary} addr {match['host'].strip('[]')} port {match['port']}"
        )

    def set_weight(self, release, weight: int) -> None:
        api, backend, stable, canary = self._names(release)
        current = self._weight(self._row(api.stat(), backend, canary))
        if weight > 0:
            self._place_canary(api, backend, canary, release)
        self._weights(api, backend, stable, canary, canary_weight(weight), current)

    def promote(self, release) -> None:
        """One ``show stat`` per promote: the canary's address and weight come from it, and
        each step after it knows the weights it set."""
        api, backend, stable, canary = self._names(release)
        row = self._row(api.stat(), backend, canary)
        addr = row.get("addr") or ""
        host, _, port = addr.rpartition(":")
        if not host or not port.isdigit():
            raise DriverError(f"HAProxy shows no address for {backend}/{canary}: {addr!r}")
        # all on the new version first
        self._weights(api, backend, stable, canary, MAX_WEIGHT, self._weight(row))
        api.change(f"set server {backend}/{stable} addr {host.strip('[]')} port {port}")
        self._weights(api, backend, stable, canary, 0, MAX_WEIGHT)  # the stable slot now runs it

    def rollback(self, release) -> None:
        api, backend, stable, canary = self._names(release)
        current = self._weight(self._row(api.stat(), backend, canary))
        self._weights(api, backend, stable, canary, 0, current)

    def status(self, release) -> DriverStatus:
        api, backend, stable, canary = self._names(release)
        rows = api.stat()
        detail = {}
        weights = {}
        for track, server in (("stable", stable), ("canary", canary)):
            row = self._row(rows, backend, server)
            weights[track] = self._weight(row)
            detail[track] = {
                "server": f"{backend}/{server}",
                "address": row.get("addr", ""),
                "status": row.get("status", ""),
                "weight": weights[track],
                "check": row.get("check_status", ""),
            }
        total = weights["stable"] + weights["canary"]
        percent = round(100 * weights["canary"] / total) if total else None
        healthy = all(
            d["status"].startswith(("UP", "no check")) for d in detail.values() if d["weight"]
        )
        return DriverStatus(weight=percent, healthy=healthy, detail=detail)

    scales = True

    def _pool(self, service) -> list[str]:
        slug = service.slug
        pool = [str(n).replace("{service}", slug) for n in self.config.get("servers") or []]
        for name in pool:
            if not _NAME.match(name):
                raise DriverError(f"haproxy driver_config servers: {name!r} is not a valid name")
        return pool

    def max_replicas(self, service) -> int | None:
        return len(self._pool(service)) or None

    def scale(self, service, replicas: int) -> None:
        """Enable the first ``replicas`` servers of ``driver_config.servers`` (state ready),
        put the others in maintenance (they stop taking new requests)."""
        api, backend, _, _ = self._names(service)
        pool = self._pool(service)
        if not pool:
            raise DriverError("haproxy driver_config names no servers to scale (servers: [...])")
        if replicas > len(pool):
            raise DriverError(f"{backend} has {len(pool)} servers; cannot run {replicas}")
        for i, server in enumerate(pool):  # enable before disabling
            if i < replicas:
                api.change(f"set server {backend}/{server} state ready")
        for server in pool[replicas:]:
            api.change(f"set server {backend}/{server} state maint")

    def runtime(self, service) -> dict:
        api, backend, stable, canary = self._names(service)
        rows = [
            r
            for r in api.stat()
            if r.get("pxname") == backend and r.get("svname") not in ("FRONTEND", "BACKEND")
        ]
        tracks = {stable: "stable", canary: "canary"}
        return {
            "kind": "haproxy",
            "location": f"backend {backend}",
            "instances": [
                {
                    "name": r.get("svname", ""),
                    "track": tracks.get(r.get("svname", ""), ""),
                    "address": r.get("addr", ""),
                    "status": r.get("status", ""),
                    "weight": self._weight(r),
                    "check": r.get("check_status", ""),
                }
                for r in rows
            ],
        }
