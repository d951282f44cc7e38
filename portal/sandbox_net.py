"""The ``isolated`` network of a sandbox (``portal.sandbox``): outbound only, never the host.

bwrap starts the command in a new network namespace (``--unshare-net``) and holds it before
``exec`` (``--block-fd``) while it tells us the namespace's pid (``--info-fd``). Backline then
starts ``slirp4netns`` on that pid, which gives the namespace a ``tap0`` (10.0.2.100/24, gateway
10.0.2.2, DNS 10.0.2.3) and carries its connections out through the worker's own sockets:

- ``--disable-host-loopback``: the gateway 10.0.2.2 does not lead to the host's 127.0.0.1
  (PostgreSQL, Redis, the broker listen there); inside, 127.0.0.1 is the namespace's own.
- every other address of the host itself (its LAN address, a docker bridge...: the ``host
  LOCAL`` entries of ``/proc/net/fib_trie``) gets an ``unreachable`` route inside the namespace,
  so a service bound to ``0.0.0.0`` on the host is not reachable either. The command has no
  capability left to change a route.
- ``--enable-sandbox`` / ``--enable-seccomp``: slirp4netns itself runs confined.

The command starts only once tap0 and the routes are in place (``--ready-fd``); slirp4netns ends
with the command (``--exit-fd``, closed by Backline or by the kernel if the worker dies).

Base layer: imports nothing from squads, pipelines, infra or monitoring.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import threading
import time

from django.conf import settings

SETUP_SECONDS = 20.0
TAP = "tap0"
FIB_LEAF_RE = re.compile(r"\|--\s+([0-9.]+)")
FIB_LOCAL_RE = re.compile(r"/(\d+)\s+host\s+LOCAL")


class NetworkError(Exception):
    """The isolated network could not be set up; nothing was run."""


def slirp_binary() -> str | None:
    return shutil.which(settings.SLIRP4NETNS_BIN)


def missing_message() -> str:
    return (
        f"The sandbox's isolated network needs slirp4netns ({settings.SLIRP4NETNS_BIN!r}), which "
        "is not installed on this worker: install it (apt-get install slirp4netns, or `make "
        "deps`) or set SLIRP4NETNS_BIN; a step may ask for `network: none`. Nothing was run."
    )


def _local_networks(path: str) -> list[ipaddress.IPv4Network]:
    """The ``host LOCAL`` entries of a ``fib_trie`` file (the addresses of that namespace)."""
    try:
        with open(path) as fh:
            lines = fh.read().splitlines()
    except OSError:
        return []
    found = []
    leaf = ""
    for line in lines:
        if m := FIB_LEAF_RE.search(line):
            leaf = m.group(1)
        elif (m := FIB_LOCAL_RE.search(line)) and leaf:
            found.append(ipaddress.IPv4Network(f"{leaf}/{m.group(1)}", strict=False))
    return found


def host_addresses() -> list[str]:
    """The host's own IPv4 addresses and local ranges, loopback excepted (``a.b.c.d/n``)."""
    nets = _local_networks("/proc/net/fib_trie")
    return sorted({str(net) for net in nets if not net.is_loopback})


def _wait_loopback(pid: int, deadline: float) -> None:
    """Until bwrap has brought up the namespace's loopback (its netlink requests would race
    slirp4netns' otherwise)."""
    while not any(net.is_loopback for net in _local_networks(f"/proc/{pid}/net/fib_trie")):
        if time.monotonic() > deadline:
            raise NetworkError("timed out waiting for the sandbox's loopback")
        if not os.path.exists(f"/proc/{pid}/ns/net"):
            raise NetworkError("the sandbox ended while its network was set up")
        time.sleep(0.002)


def _read_until(fd: int, done, deadline: float, what: str) -> bytes:
    data = b""
    while not done(data):
        left = deadline - time.monotonic()
        if left <= 0:
            raise NetworkError(f"timed out waiting for {what}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                raise NetworkError(f"{what} never came (the process ended)")
            data += chunk
    return data


class Isolated:
    """The isolated network of one command (see the module docstring)."""

    def __init__(self):
        binary = slirp_binary()
        if not binary:
            raise NetworkError(missing_message())
        self.binary = binary
        self.fds: dict[str, int] = {}
        self.fds["info_r"], self.fds["info_w"] = os.pipe()
        self.fds["block_r"], self.fds["block_w"] = os.pipe()
        self.slirp: subprocess.Popen | None = None
        self.log = tempfile.TemporaryFile()

    def bwrap_args(self) -> list[str]:
        info, block = str(self.fds["info_w"]), str(self.fds["block_r"])
        return ["--unshare-net", "--info-fd", info, "--block-fd", block]

    def pass_fds(self) -> tuple[int, ...]:
        return (self.fds["info_w"], self.fds["block_r"])

    def _close(self, *names: str) -> None:
        for name in names:
            fd = self.fds.pop(name, None)
            if fd is not None:
                os.close(fd)

    def start(self) -> None:
        """After bwrap started: attach slirp4netns, block the host's addresses, let it run.
        Raises NetworkError (the caller kills the command, which never ran)."""
        self._close("info_w", "block_r")
        deadline = time.monotonic() + SETUP_SECONDS
        info = _read_until(self.fds["info_r"], _complete_json, deadline, "the sandbox's pid")
        pid = int(json.loads(info)["child-pid"])
        _wait_loopback(pid, deadline)
        ready_r, ready_w = os.pipe()
        exit_r, self.fds["exit_w"] = os.pipe()
        try:
            self.slirp = subprocess.Popen(
                [
                    self.binary,
                    "--configure",
                    "--mtu=65520",
                    "--disable-host-loopback",
                    "--enable-sandbox",
                    "--enable-seccomp",
                    f"--ready-fd={ready_w}",
                    f"--exit-fd={exit_r}",
                    str(pid),
                    TAP,
                ],
                stdin=subprocess.DEVNULL,
                stdout=self.log,
                stderr=self.log,
                pass_fds=(ready_w, exit_r),
                start_new_session=True,
            )
        finally:
            os.close(ready_w)
            os.close(exit_r)
        try:
            _read_until(ready_r, bool, deadline, "slirp4netns to configure tap0")
        except NetworkError as exc:
            raise NetworkError(f"{exc}: {self.slirp_output()}") from None
        finally:
            os.close(ready_r)
        self._block_host(pid)
        os.write(self.fds["block_w"], b"1")
        self._close("block_w", "info_r")

    def _block_host(self, pid: int) -> None:
        targets = host_addresses()
        if not targets:
            return
        enter = ["nsenter", f"--target={pid}", "--net"]
        if os.geteuid() != 0:  # the namespace belongs to bwrap's user namespace
            enter[2:2] = ["--user", "--preserve-credentials"]
        batch = "".join(f"route add unreachable {net}\n" for net in targets)
        done = subprocess.run(
            [*enter, shutil.which("ip") or "/usr/sbin/ip", "-batch", "-"],
            input=batch,
            capture_output=True,
            text=True,
            timeout=SETUP_SECONDS,
        )
        if done.returncode != 0:
            raise NetworkError(f"could not block the host's addresses: {done.stderr.strip()}")

    def slirp_output(self) -> str:
        self.log.seek(0)
        return self.log.read()[-2000:].decode(errors="replace").strip()

    def close(self) -> None:
        """End slirp4netns (the command has ended) and every descriptor."""
        self._close(*list(self.fds))
        if self.slirp is not None:
            # the namespace it served is gone with the command: SIGKILL, and reap it off the
            # step's path (its exit tears down its own namespaces: ~20 ms the step used to wait)
            if self.slirp.poll() is None:
                self.slirp.kill()
                threading.Thread(target=self.slirp.wait, name="slirp-reaper", daemon=True).start()
        self.log.close()


def _complete_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except ValueError:
        return False
    return True
