"""The reusable step executor: run one command as a subprocess, stream its masked output.

Used by pipeline steps (``pipelines.tasks``) and by the Terraform runner (``infra``).

- The command runs in its own process group (``start_new_session``); timeout and cancel kill the
  whole group: SIGTERM, ``grace`` seconds, then SIGKILL. If the worker itself dies (SIGKILL,
  OOM), the kernel kills the command too (``PR_SET_PDEATHSIG``, through ``setpriv`` or a
  ``preexec_fn`` where it is missing).
- stdout and stderr are merged and read incrementally with ``select`` (no pipe deadlock, no
  unbounded buffering); text is handed to ``on_output`` at least every ~0.25 s or 8 KiB.
- Everything handed out is masked first (``portal.masking.Masker``): the exact value of each secret, its
  base64 forms (at any alignment) and, for multi-line secrets, each of their lines.
- Output beyond ``max_output_bytes`` is read and discarded (the process never blocks on a full
  pipe) and a visible truncation notice is emitted once.
- With a ``sandbox`` (``portal.sandbox.Policy``) the argv is prefixed with the sandbox
  (prlimit, bwrap, setpriv); a cancel or timeout TERMs the command inside, the disk limit is
  polled while it runs, and a limit that ended it is named in ``ExecResult.limit_reason``.
"""

from __future__ import annotations

import codecs
import ctypes
import errno
import functools
import os
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from portal.masking import Masker
from portal.sandbox_net import Isolated, NetworkError

FLUSH_SECONDS = 0.25
FLUSH_BYTES = 8 * 1024
READ_BYTES = 64 * 1024
TAIL_CHARS = 8 * 1024
TRUNCATION_NOTICE = (
    "\n[backline] output truncated: more than {limit} bytes; the rest was discarded\n"
)


@dataclass(frozen=True)
class ExecResult:
    exit_code: int | None
    timed_out: bool
    canceled: bool
    truncated: bool
    duration: float
    output_bytes: int
    limit_reason: str = ""  # set when a sandbox limit ended the command

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.canceled


PR_SET_PDEATHSIG = 1


@functools.cache
def _prctl():
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):  # not glibc Linux
        return None


# util-linux's setpriv sets the parent-death signal and execs the command in place: that keeps
# Python's vfork fast path (a preexec_fn forces a full fork() of a big worker, ~10 ms a step)
SETPRIV = shutil.which("setpriv")


def _die_with_parent(argv, cwd, env):
    """(argv, preexec_fn) so that the command is SIGKILLed if the worker dies first. A missing
    command still raises FileNotFoundError here, as Popen would."""
    if SETPRIV is None:
        return argv, _die_with_parent_fn()
    exe = argv[0]
    if os.sep in exe:
        found = os.path.exists(os.path.join(cwd or os.getcwd(), exe))
    else:
        found = shutil.which(exe, path=env.get("PATH", os.defpath)) is not None
    if not found:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), exe)
    return [SETPRIV, "--pdeathsig", "KILL", "--", *argv], None


def _die_with_parent_fn():
    """A ``preexec_fn`` asking the kernel to SIGKILL the child when the process that started
    it dies, so a worker killed with SIGKILL leaves no step or terraform running on (an
    orphaned terraform would keep its state lock). None where prctl is unavailable."""
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def preexec():
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def run_process(
    argv: list[str],
    *,
    cwd,
    env: dict,
    timeout: float | None,
    secrets: list[str],
    on_output: Callable[[str], None],
    should_cancel: Callable[[], bool] = lambda: False,
    on_heartbeat: Callable[[], None] | None = None,
    heartbeat_every: float = 5.0,
    max_output_bytes: int = 10 * 2**20,
    grace: float = 5.0,
    sandbox=None,
) -> ExecResult:
    """Run ``argv`` in its own process group; see the module docstring. With a ``sandbox``
    (``portal.sandbox.Policy``) the command runs inside it, and a limit that ends it is
    named in ``ExecResult.limit_reason``."""
    masker = Masker(secrets)
    started = time.monotonic()
    env = {k: str(v) for k, v in env.items()}
    cwd = str(cwd) if cwd is not None else None
    try:
        proc, net = _spawn(list(argv), cwd, env, sandbox)
    except NetworkError as exc:
        return _not_started(masker.mask(str(exc)), on_output, started)
    run = _Run(
        proc,
        masker=masker,
        on_output=on_output,
        max_output_bytes=max_output_bytes,
        sandbox=sandbox,
        started=started,
        timeout=timeout,
        should_cancel=should_cancel,
        on_heartbeat=on_heartbeat,
        heartbeat_every=heartbeat_every,
        grace=grace,
    )
    try:
        run.loop()
    finally:
        run.finish()
        if net is not None:
            net.close()
    return run.result()


def _not_started(reason: str, on_output, started: float) -> ExecResult:
    on_output(f"[backline] {reason}\n")
    return ExecResult(
        exit_code=None,
        timed_out=False,
        canceled=False,
        truncated=False,
        duration=time.monotonic() - started,
        output_bytes=0,
        limit_reason=reason,
    )


def _spawn(argv: list[str], cwd, env: dict, sandbox) -> tuple[subprocess.Popen, Isolated | None]:
    """Start the command (inside the sandbox, if any) in a new session, stdout and stderr
    merged into one pipe. With ``setpriv`` there is no ``preexec_fn`` (vfork stays possible).
    An isolated network is attached before the command starts (``portal.sandbox_net``); if it
    cannot be, the command is killed unstarted and NetworkError raised."""
    net = None
    if sandbox is not None:
        sandbox.prepare()
        net = sandbox.network_setup()
        argv = sandbox.wrap(argv, net)
    argv, preexec = _die_with_parent(argv, cwd, env)
    try:
        proc = _popen(argv, cwd, env, preexec, net.pass_fds() if net else ())
    except BaseException:
        if net is not None:
            net.close()
        raise
    if net is not None:
        try:
            net.start()
        except (NetworkError, OSError, ValueError, KeyError) as exc:
            _kill_group(proc, signal.SIGKILL)
            proc.wait()
            said = ""
            if proc.stdout is not None:
                os.set_blocking(proc.stdout.fileno(), False)
                said = (proc.stdout.read() or b"")[-2000:].decode(errors="replace").strip()
                proc.stdout.close()
            net.close()
            raise NetworkError(
                f"The sandbox's isolated network could not be set up: {exc}"
                + (f" (the sandbox said: {said})" if said else "")
            ) from exc
    return proc, net


def _popen(argv, cwd, env, preexec, pass_fds) -> subprocess.Popen:
    return subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        close_fds=True,
        pass_fds=pass_fds,
        preexec_fn=preexec,
    )


class _Run:
    """The state of one running command: its output pipe, what was read and emitted, and
    how it is ending (exit, end of output, timeout, cancel, sandbox limit)."""

    def __init__(
        self,
        proc: subprocess.Popen,
        *,
        masker: Masker,
        on_output: Callable[[str], None],
        max_output_bytes: int,
        sandbox,
        started: float,
        timeout: float | None,
        should_cancel: Callable[[], bool],
        on_heartbeat: Callable[[], None] | None,
        heartbeat_every: float,
        grace: float,
    ):
        self.proc = proc
        self.masker = masker
        self.on_output = on_output
        self.max_output_bytes = max_output_bytes
        self.sandbox = sandbox
        self.started = started
        self.timeout = timeout
        self.should_cancel = should_cancel
        self.on_heartbeat = on_heartbeat
        self.heartbeat_every = heartbeat_every
        self.grace = grace
        assert proc.stdout is not None  # stdout=PIPE
        self.fd = proc.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.fd, selectors.EVENT_READ)
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._init_state()

    def _init_state(self) -> None:
        self.pending = ""  # decoded, not yet masked/emitted
        self.last_flush = time.monotonic()
        self.last_beat = time.monotonic()
        self.last_cancel_check = 0.0
        self.output_bytes = 0
        self.kept_bytes = 0
        self.truncated = False
        self.timed_out = False
        self.canceled = False
        self.term_sent_at: float | None = None
        self.exited_at: float | None = None
        self.eof = False
        self.tail = ""  # the last output, for telling which limit ended the command
        self.limit_reason = ""

    def flush(self, final: bool = False) -> None:
        self.last_flush = time.monotonic()
        if not self.pending:
            return
        text, self.pending = self.masker.split_safe(self.pending, final=final)
        if text:
            self.on_output(text)

    def stop(self) -> None:
        if self.term_sent_at is None:
            self.term_sent_at = time.monotonic()
            # in a sandbox, TERM the command itself (terraform's interrupt), not bwrap
            if self.sandbox is not None:
                self.sandbox.signal_inside(self.proc.pid, signal.SIGTERM)
            else:
                _kill_group(self.proc, signal.SIGTERM)

    def loop(self) -> None:
        """Read, flush, and watch the command until it has ended and its output is drained."""
        while True:
            if not self.eof:
                self._read_ready()
            else:
                try:
                    self.proc.wait(timeout=0.05)
                except subprocess.TimeoutExpired:
                    pass
            now = time.monotonic()
            if self.pending and (
                len(self.pending) >= FLUSH_BYTES or now - self.last_flush >= FLUSH_SECONDS
            ):
                self.flush()
            if self._ended(now):
                break
            if self.on_heartbeat is not None and now - self.last_beat >= self.heartbeat_every:
                self.last_beat = now
                self.on_heartbeat()
            if self.term_sent_at is None and self.exited_at is None:
                self._check_stop(now)
            if self._killed_after_grace(now):
                break

    def _read_ready(self) -> None:
        """Read what the pipe has within 0.05 s; note the end of output."""
        for _key, _ev in self.sel.select(timeout=0.05):
            try:
                data = os.read(self.fd, READ_BYTES)
            except BlockingIOError:
                continue
            if not data:
                self.eof = True
                self.sel.unregister(self.fd)
                break
            self._take(data)

    def _take(self, data: bytes) -> None:
        """Count ``data``; keep it within the size cap, announcing the truncation once."""
        self.output_bytes += len(data)
        if self.truncated:
            return
        room = self.max_output_bytes - self.kept_bytes
        if len(data) > room:
            data = data[:room]
            self.truncated = True
        self.kept_bytes += len(data)
        text = self.decoder.decode(data)
        self.pending += text
        self.tail = (self.tail + text)[-TAIL_CHARS:]
        if self.truncated:
            self.pending += self.decoder.decode(b"", final=True)
            self.flush(final=True)
            self.on_output(TRUNCATION_NOTICE.format(limit=self.max_output_bytes))

    def _ended(self, now: float) -> bool:
        """True once the command exited and its output is drained (or a background child
        holding the pipe open was killed and given 3 s)."""
        if self.exited_at is None and self.proc.poll() is not None:
            self.exited_at = now
        if self.eof and self.exited_at is not None:
            return True
        if self.exited_at is not None and not self.eof and now - self.exited_at > 1.0:
            # the main process is gone but a background child holds the pipe: end it
            _kill_group(self.proc, signal.SIGKILL)
            if now - self.exited_at > 3.0:
                return True
        return False

    def _check_stop(self, now: float) -> None:
        """Stop a running command on timeout, a sandbox limit, or a cancel request."""
        if self.timeout is not None and now - self.started > self.timeout:
            self.timed_out = True
            self.stop()
        elif self.sandbox is not None and (reason := self.sandbox.watch()):
            self.limit_reason = reason
            _kill_group(self.proc, signal.SIGKILL)
            self.term_sent_at = now
        elif now - self.last_cancel_check >= FLUSH_SECONDS:
            self.last_cancel_check = now
            if self.should_cancel():
                self.canceled = True
                self.stop()

    def _killed_after_grace(self, now: float) -> bool:
        """SIGKILL the group ``grace`` s after a stop; True when it is time to give up waiting."""
        if self.term_sent_at is not None and now - self.term_sent_at > self.grace:
            _kill_group(self.proc, signal.SIGKILL)
            if now - self.term_sent_at > self.grace + 5 and self.exited_at is not None:
                return True
        return False

    def finish(self) -> None:
        """Reap the command, emit the rest of its output, leave nothing of it running."""
        proc = self.proc
        if proc.poll() is None:
            _kill_group(proc, signal.SIGKILL)
        proc.wait()
        if not self.truncated:
            self.pending += self.decoder.decode(b"", final=True)
        self.flush(final=True)
        self.sel.close()
        if proc.stdout is not None:
            proc.stdout.close()
        # a step leaves nothing behind: background children still in its group are killed
        _kill_group(proc, signal.SIGKILL)

    def result(self) -> ExecResult:
        duration = time.monotonic() - self.started
        limit_reason = self.limit_reason
        if self.sandbox is not None and not (limit_reason or self.timed_out or self.canceled):
            limit_reason = self.sandbox.explain(self.proc.returncode, duration, self.tail)
        return ExecResult(
            exit_code=self.proc.returncode,
            timed_out=self.timed_out,
            canceled=self.canceled,
            truncated=self.truncated,
            duration=duration,
            output_bytes=self.output_bytes,
            limit_reason=limit_reason,
        )
