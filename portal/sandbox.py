"""The sandbox every pipeline step and every terraform command runs in (bubblewrap).

``Policy.wrap(argv)`` prefixes a command with::

    prlimit <limits> -- setpriv --reuid U --regid U --clear-groups --no-new-privs \
        --pdeathsig KILL -- bwrap <mounts> <namespaces> -- argv

- **Filesystem**: its own mount namespace. The system (``/usr``, ``/etc``, and ``/bin``,
  ``/lib``... as symlinks or read-only binds) is read-only; the job's own directories are
  read-write, a few (the service's git cache, Terraform's plugin cache) read-only; ``/tmp`` is a
  private tmpfs the size of the disk limit; a fresh ``/proc`` and a minimal ``/dev``. Nothing
  else exists: not ``var/`` (other checkouts, state, SQLite, the embedded Redis socket), not the
  Backline source or its virtualenv, not ``/run`` or ``/var/run/postgresql``.
- **Network** (``network``): ``isolated`` (the default) is a network namespace of its own with
  outbound connectivity through slirp4netns and no way to the host's loopback or any of the
  host's own addresses (``portal.sandbox_net``); ``none`` has no network at all; ``host`` is the
  worker's own network, loopback services included, only where the installation allows it
  (``BACKLINE_SANDBOX_HOST_NETWORK``).
- **Namespaces**: user, PID, IPC, UTS, mount, cgroup, network (not with ``host``); the
  step is a child of bwrap's init in its own PID namespace, so when the step's main process
  ends every process it left behind dies with it. ``--new-session`` (no TIOCSTI on the
  worker's terminal), ``--die-with-parent``, ``--cap-drop ALL``, no new privileges.
- **Identity**: an unprivileged uid/gid outside (``SANDBOX_UID_BASE`` + the worker's pid modulo
  ``SANDBOX_UID_COUNT``: RLIMIT_NPROC counts per uid, so concurrent jobs on a host do not share
  a process budget), shown as ``nobody`` (65534) inside. The job's read-write directories are
  chowned to that uid before the command starts.
- **Limits** (``Limits``): RLIMIT_AS (memory), RLIMIT_CPU, RLIMIT_NPROC, RLIMIT_FSIZE; disk
  written is the tmpfs size for ``/tmp`` plus a poll of the read-write directories
  (``Policy.watch``). ``Policy.explain`` turns an ending caused by a limit into a sentence.
- **Environment**: the command gets exactly the environment the caller passes to Popen
  (declared variables and secrets only, never the worker's), so no ``--setenv`` puts a secret on
  a command line.

Base layer: imports nothing from squads, pipelines, infra or monitoring.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from django.conf import settings

from portal.sandbox_net import Isolated

UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
NETWORKS = ("isolated", "none", "host")
INSIDE_ID = 65534  # nobody / nogroup
SYSTEM_DIRS = ("/usr", "/etc")
SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
WATCH_EVERY = 1.0

MEMORY_MARKERS = (
    "MemoryError",
    "Cannot allocate memory",
    "std::bad_alloc",
    "out of memory",
    "memory exhausted",
    "failed to allocate",
    "Out of memory",
)
FORK_RE = re.compile(
    r"Cannot fork|(fork|clone|spawn|thread)[^\n]{0,60}Resource temporarily unavailable"
    r"|Resource temporarily unavailable[^\n]{0,40}fork|fork: retry",
    re.IGNORECASE,
)
SIGXCPU_EXIT, SIGXFSZ_EXIT, SIGKILL_EXIT = 128 + 24, 128 + 25, 128 + 9


class SandboxError(Exception):
    """The sandbox cannot be set up (bwrap missing, a limit above the installation's)."""


def parse_size(value) -> int:
    """Bytes from ``2g``, ``512m``, ``1GiB``, ``300k`` or a plain number of bytes."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size")
    if isinstance(value, int | float):
        if value <= 0:
            raise ValueError("must be more than 0")
        return int(value)
    m = SIZE_RE.match(str(value or ""))
    if not m:
        raise ValueError(f"{value!r} is not a size (use bytes, or 512m, 2g, 1GiB)")
    size = int(float(m.group(1)) * UNITS[m.group(2).lower()])
    if size <= 0:
        raise ValueError("must be more than 0")
    return size


def format_size(size: int) -> str:
    for unit, factor in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= factor:
            value = size / factor
            return f"{value:g} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{size} bytes"


@dataclass(frozen=True)
class Limits:
    """Per-job limits; ``None`` means the installation maximum applies."""

    memory: int | None = None
    cpu_seconds: int | None = None
    processes: int | None = None
    file_size: int | None = None
    disk: int | None = None

    FIELDS = ("memory", "cpu_seconds", "processes", "file_size", "disk")
    SIZES = ("memory", "file_size", "disk")

    @classmethod
    def maximum(cls) -> Limits:
        return cls(
            memory=settings.SANDBOX_MAX_MEMORY,
            cpu_seconds=settings.SANDBOX_MAX_CPU_SECONDS,
            processes=settings.SANDBOX_MAX_PROCESSES,
            file_size=settings.SANDBOX_MAX_FILE_SIZE,
            disk=settings.SANDBOX_MAX_DISK,
        )

    @classmethod
    def parse(cls, name: str, value) -> int:
        """One limit from a spec value, checked against the installation maximum; raises
        ValueError with the reason."""
        if name in cls.SIZES:
            number = parse_size(value)
        else:
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{value!r} is not a whole number above 0")
            number = value
        top = getattr(cls.maximum(), name)
        if number > top:
            shown = format_size(top) if name in cls.SIZES else str(top)
            raise ValueError(f"above this installation's maximum of {shown}")
        return number

    def over(self, other: Limits) -> Limits:
        """These limits, with the unset ones taken from ``other``."""
        return replace(self, **{f: getattr(self, f) or getattr(other, f) for f in self.FIELDS})

    def effective(self) -> Effective:
        full = self.over(Limits.maximum())
        return Effective(**{f: int(getattr(full, f) or 0) for f in self.FIELDS})


@dataclass(frozen=True)
class Effective:
    """Limits with every value decided (the job's own, else the installation maximum)."""

    memory: int
    cpu_seconds: int
    processes: int
    file_size: int
    disk: int


def enabled() -> bool:
    return settings.SANDBOX == "bwrap"


def off_warning() -> str:
    return (
        "Sandbox off (BACKLINE_SANDBOX=none): steps and terraform run as the worker's user and "
        "can read its environment, its files and other jobs' files."
    )


def bwrap_binary() -> str:
    found = shutil.which(settings.BWRAP_BIN)
    if not found:
        raise SandboxError(
            f"The sandbox is on (BACKLINE_SANDBOX=bwrap) but bubblewrap ({settings.BWRAP_BIN!r}) "
            "is not installed on this worker: install it (apt-get install bubblewrap, or `make "
            "deps`) or set BWRAP_BIN. Nothing was run."
        )
    return found


def host_network_refusal() -> str:
    return (
        "network: host (the worker's own network, with the services on its loopback) is not "
        "allowed on this installation (BACKLINE_SANDBOX_HOST_NETWORK is off); use isolated "
        "(outbound only, the default) or none"
    )


def sandbox_uid() -> int:
    return settings.SANDBOX_UID_BASE + os.getpid() % settings.SANDBOX_UID_COUNT


@dataclass
class Policy:
    """How one job's commands are sandboxed; see the module docstring."""

    rw: list[Path]
    ro: list[Path | str] = field(default_factory=list)
    network: str = "isolated"
    limits: Limits = field(default_factory=Limits)
    binds: list[tuple[Path, str]] = field(default_factory=list)  # read-only, at another path
    hide: list[Path] = field(default_factory=list)  # emptied when inside a read-only path
    uid: int = field(default_factory=sandbox_uid)

    def __post_init__(self):
        if self.network not in NETWORKS:
            raise SandboxError(f"network must be one of {', '.join(NETWORKS)}")
        if self.network == "host" and not settings.SANDBOX_HOST_NETWORK:
            raise SandboxError(host_network_refusal())
        self.effective: Effective = self.limits.effective()
        self._next_watch = 0.0

    def prepare(self) -> None:
        """Give the sandbox's uid the read-write directories (as root; elsewhere a no-op)."""
        if os.geteuid() != 0:
            return
        for top in self.rw:
            if os.lstat(top).st_uid == self.uid:
                continue  # given at an earlier step; what steps create is theirs already
            for root, dirs, files in os.walk(top):
                for name in dirs + files:
                    os.chown(os.path.join(root, name), self.uid, self.uid, follow_symlinks=False)
            os.chown(top, self.uid, self.uid, follow_symlinks=False)  # last: marks it done

    def network_setup(self) -> Isolated | None:
        """The isolated network of one command (None for ``none`` and ``host``); raises
        NetworkError when slirp4netns is missing."""
        return Isolated() if self.network == "isolated" else None

    def wrap(self, argv: list[str], net: Isolated | None = None) -> list[str]:
        lim = self.effective
        prefix = [
            shutil.which("prlimit") or "prlimit",
            f"--as={lim.memory}",
            f"--cpu={lim.cpu_seconds}:{lim.cpu_seconds + 2}",
            f"--nproc={lim.processes}",
            f"--fsize={lim.file_size}",
            "--core=0",
            "--",
            bwrap_binary(),
            *self.mounts(),
            *self.namespaces(net),
            "--",
        ]
        if os.geteuid() == 0:
            # bwrap sets up as root (it can bind paths under 0700 folders), then the command
            # becomes the sandbox's uid with no capabilities left
            prefix += [
                shutil.which("setpriv") or "/usr/bin/setpriv",
                f"--reuid={self.uid}",
                f"--regid={self.uid}",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--no-new-privs",
                "--",
            ]
        return [*prefix, *argv]

    def mounts(self) -> list[str]:
        args = []
        for path in SYSTEM_DIRS:
            if os.path.isdir(path):
                args += ["--ro-bind", path, path]
        for path in SYSTEM_LINKS:
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
        args += ["--proc", "/proc", "--dev", "/dev"]
        args += ["--size", str(self.effective.disk), "--perms", "1777", "--tmpfs", "/tmp"]
        for ro_path in self.ro:
            if Path(ro_path).exists():
                args += ["--ro-bind", str(ro_path), str(ro_path)]
        for hidden in self.hide:  # a read-only path never exposes var/, other jobs or the source
            if hidden.is_dir() and any(Path(hidden).is_relative_to(ro) for ro in self.ro):
                args += ["--tmpfs", str(hidden)]
        for rw_path in self.rw:
            args += ["--bind", str(rw_path), str(rw_path)]
        for source, dest in self.binds:
            args += ["--ro-bind", str(source), dest]
        return args + self._open_parents()

    def _open_parents(self) -> list[str]:
        """The folders bwrap creates above the bound paths are made traversable (their real
        counterparts may be 0700): the sandbox's uid reaches its paths by absolute name."""
        fixed = [Path(p) for p in (*SYSTEM_DIRS, *self.ro) if Path(p).exists()]
        out: list[str] = []
        binds = (dest for _source, dest in self.binds)
        for path in (*(p for p in self.ro if Path(p).exists()), *self.rw, *binds):
            for parent in reversed(Path(path).parents[:-1]):
                if str(parent) in out or any(parent.is_relative_to(f) for f in fixed):
                    continue
                out.append(str(parent))
        return [
            arg for parent in out for arg in ("--chmod", "0755", parent)
        ]  # bwrap keeps the caller's working directory (Popen's cwd) when it exists

    def namespaces(self, net: Isolated | None = None) -> list[str]:
        args = ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        args += ["--hostname", "backline-sandbox"]
        if os.geteuid() != 0:  # an unprivileged worker: a user namespace, nobody inside
            args += ["--unshare-user", "--uid", str(INSIDE_ID), "--gid", str(INSIDE_ID)]
            args += ["--cap-drop", "ALL"]
        if net is not None:
            args += net.bwrap_args()
        elif self.network != "host":  # none (or isolated without its slirp4netns: nothing)
            args.append("--unshare-net")
        args += ["--new-session", "--die-with-parent"]
        return args

    def signal_inside(self, pid: int, sig: int) -> None:
        """Send ``sig`` to every process the sandbox started under ``pid`` (bwrap's own
        processes excepted: a TERM to bwrap would SIGKILL the command through
        --die-with-parent, leaving terraform no time to release its state lock)."""
        children: dict[int, list[tuple[int, str]]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    stat = fh.read()
            except OSError:
                continue
            comm = stat[stat.find("(") + 1 : stat.rfind(")")]
            ppid = int(stat[stat.rfind(")") + 1 :].split()[1])
            children.setdefault(ppid, []).append((int(entry), comm))
        todo = [pid]
        while todo:
            for child, comm in children.get(todo.pop(), []):
                todo.append(child)
                if comm != "bwrap":
                    try:
                        os.kill(child, sig)
                    except (ProcessLookupError, PermissionError):
                        pass

    # -- limits seen from outside
    def watch(self) -> str:
        """A reason when the read-write directories hold more than the disk limit ('' while
        within it); checked about once a second."""
        now = time.monotonic()
        if now < self._next_watch:
            return ""
        used = 0
        try:
            for top in self.rw:
                for root, _dirs, files in os.walk(top):
                    for name in files:
                        try:
                            used += os.lstat(os.path.join(root, name)).st_blocks * 512
                        except OSError:
                            continue
                        if used > self.effective.disk:
                            return self.disk_reason()
        finally:
            # a big tree is walked less often: at most ~10% of the worker's time goes to it
            spent = time.monotonic() - now
            self._next_watch = time.monotonic() + max(WATCH_EVERY, 10 * spent)
        return ""

    def disk_reason(self) -> str:
        return f"killed: disk limit {format_size(self.effective.disk)} exceeded"

    def explain(self, exit_code: int | None, duration: float, tail: str) -> str:
        """Why the command ended, when a limit ended it; '' otherwise."""
        if exit_code in (None, 0):
            return ""
        lim = self.effective
        if exit_code == SIGXFSZ_EXIT or "File too large" in tail:
            return f"file size limit exceeded ({format_size(lim.file_size)} per file)"
        if exit_code == SIGXCPU_EXIT or (exit_code == SIGKILL_EXIT and duration >= lim.cpu_seconds):
            return f"killed: CPU time limit of {lim.cpu_seconds} s exceeded"
        if FORK_RE.search(tail):
            return f"process limit of {lim.processes} reached (a process could not be started)"
        if "No space left on device" in tail:
            return f"disk limit exceeded (/tmp holds at most {format_size(lim.disk)})"
        if any(marker in tail for marker in MEMORY_MARKERS):
            return f"memory limit {format_size(lim.memory)} exceeded (an allocation was refused)"
        return ""
