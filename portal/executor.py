"""The reusable step executor: run one command as a subprocess, stream its masked output.

Used by pipeline steps (``pipelines.tasks``) and by the Terraform runner (``infra``).

- The command runs in its own process group (``start_new_session``); timeout and cancel kill the
  whole group: SIGTERM, ``grace`` seconds, then SIGKILL. If the worker itself dies (SIGKILL,
  OOM), the kernel kills the command too (``PR_SET_PDEATHSIG``, through ``setpriv`` or a
  ``preexec_fn`` where it is missing).
- stdout and stderr are merged and read incrementally with ``select`` (no pipe deadlock, no
  unbounded buffering); text is handed to ``on_output`` at least every ~0.25 s or 8 KiB.
- Everything handed out is masked first (``Masker``): the exact value of each secret, its
  base64 forms (at any alignment) and, for multi-line secrets, each of their lines.
- Output beyond ``max_output_bytes`` is read and discarded (the process never blocks on a full
  pipe) and a visible truncation notice is emitted once.
- With a ``sandbox`` (``portal.sandbox.Policy``) the argv is prefixed with the sandbox
  (prlimit, bwrap, setpriv); a cancel or timeout TERMs the command inside, the disk limit is
  polled while it runs, and a limit that ended it is named in ``ExecResult.limit_reason``.
"""

from __future__ import annotations

import base64
import codecs
import ctypes
import errno
import functools
import os
import re
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

MASK = "***"
FLUSH_SECONDS = 0.25
FLUSH_BYTES = 8 * 1024
READ_BYTES = 64 * 1024
TAIL_CHARS = 8 * 1024
MIN_DERIVED_LEN = 4  # lines / base64 fragments shorter than this are not masked on their own
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


def _b64_variants(raw: bytes) -> set[str]:
    """Base64 text that any encoding of ``raw`` contains, whatever its alignment in the stream."""
    out: set[str] = set()
    if not raw:
        return out
    out.add(base64.b64encode(raw).decode())
    for shift, skip in ((0, 0), (1, 2), (2, 3)):
        enc = base64.b64encode(b"\0" * shift + raw).decode().rstrip("=")
        total = shift + len(raw)
        if total % 3:
            enc = enc[:-1]  # the last character also depends on the byte that follows
        enc = enc[skip:]
        if len(enc) >= MIN_DERIVED_LEN:
            out.add(enc)
    return out


class Masker:
    """Replace secret values (and their base64 / per-line forms) with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()):
        variants: set[str] = set()
        for secret in secrets:
            if not secret:
                continue
            variants.add(secret)
            pieces = [secret]
            stripped = secret.strip()
            if stripped and stripped != secret:
                variants.add(stripped)
                pieces.append(stripped)
            if "\n" in secret or "\r" in secret:
                for line in secret.splitlines():
                    line = line.strip()
                    if len(line) >= MIN_DERIVED_LEN:
                        variants.add(line)
                        pieces.append(line)
            for piece in pieces:
                for enc in _b64_variants(piece.encode()):
                    variants.add(enc)
                    # `base64` wraps at 76 columns: mask each wrapped line too
                    for i in range(0, len(enc), 76):
                        frag = enc[i : i + 76]
                        if len(frag) >= MIN_DERIVED_LEN and len(enc) > 76:
                            variants.add(frag)
        self.variants = sorted(variants, key=len, reverse=True)
        self.longest = len(self.variants[0]) if self.variants else 0
        self._single_line = [v for v in self.variants if "\n" not in v and "\r" not in v]
        self._firsts = {v[0] for v in self._single_line}
        self._re = (
            re.compile("|".join(re.escape(v) for v in self.variants)) if self.variants else None
        )

    def __bool__(self):
        return self._re is not None

    def mask(self, text: str) -> str:
        if self._re is None or not text:
            return text
        return self._re.sub(MASK, text)

    def split_safe(self, text: str, final: bool = False) -> tuple[str, str]:
        """Mask what can be safely released now; hold back a tail that may begin a secret.

        Returns ``(masked_text_to_emit, raw_text_to_keep)``.
        """
        if self._re is None or final:
            return self.mask(text), ""
        n = len(text)
        cut = n
        # hold back the earliest tail that could still grow into a secret: it is within the
        # last (partial) line, since multi-line secrets are also masked line by line
        start = max(text.rfind("\n") + 1, n - (self.longest - 1))
        for i in range(start, n):
            if text[i] not in self._firsts:
                continue
            suffix = text[i:]
            if any(len(v) > len(suffix) and v.startswith(suffix) for v in self._single_line):
                cut = i
                break
        for m in self._re.finditer(text):
            if m.start() < cut < m.end():
                cut = m.end()  # never cut through a complete secret
            if m.start() >= cut:
                break
        return self.mask(text[:cut]), text[cut:]


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
    argv = list(argv)
    if sandbox is not None:
        sandbox.prepare()
        argv = sandbox.wrap(argv)
    argv, preexec = _die_with_parent(argv, cwd, env)
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        close_fds=True,
        preexec_fn=preexec,
    )
    assert proc.stdout is not None  # stdout=PIPE
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    pending = ""  # decoded, not yet masked/emitted
    last_flush = time.monotonic()
    last_beat = time.monotonic()
    last_cancel_check = 0.0
    output_bytes = 0
    kept_bytes = 0
    truncated = False
    timed_out = False
    canceled = False
    term_sent_at: float | None = None
    exited_at: float | None = None
    eof = False
    tail = ""  # the last output, for telling which limit ended the command
    limit_reason = ""

    def flush(final: bool = False):
        nonlocal pending, last_flush
        last_flush = time.monotonic()
        if not pending:
            return
        text, pending = masker.split_safe(pending, final=final)
        if text:
            on_output(text)

    def stop():
        nonlocal term_sent_at
        if term_sent_at is None:
            term_sent_at = time.monotonic()
            if sandbox is not None:  # TERM the command itself (terraform's interrupt), not bwrap
                sandbox.signal_inside(proc.pid, signal.SIGTERM)
            else:
                _kill_group(proc, signal.SIGTERM)

    try:
        while True:
            now = time.monotonic()
            if not eof:
                for _key, _ev in sel.select(timeout=0.05):
                    try:
                        data = os.read(fd, READ_BYTES)
                    except BlockingIOError:
                        continue
                    if not data:
                        eof = True
                        sel.unregister(fd)
                        break
                    output_bytes += len(data)
                    if truncated:
                        continue
                    room = max_output_bytes - kept_bytes
                    if len(data) > room:
                        data = data[:room]
                        truncated = True
                    kept_bytes += len(data)
                    text = decoder.decode(data)
                    pending += text
                    tail = (tail + text)[-TAIL_CHARS:]
                    if truncated:
                        pending += decoder.decode(b"", final=True)
                        flush(final=True)
                        on_output(TRUNCATION_NOTICE.format(limit=max_output_bytes))
            else:
                try:
                    proc.wait(timeout=0.05)
                except subprocess.TimeoutExpired:
                    pass
            now = time.monotonic()
            if pending and (len(pending) >= FLUSH_BYTES or now - last_flush >= FLUSH_SECONDS):
                flush()

            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if eof and exited_at is not None:
                break
            if exited_at is not None and not eof and now - exited_at > 1.0:
                # the main process is gone but a background child holds the pipe: end it
                _kill_group(proc, signal.SIGKILL)
                if now - exited_at > 3.0:
                    break

            if on_heartbeat is not None and now - last_beat >= heartbeat_every:
                last_beat = now
                on_heartbeat()
            if term_sent_at is None and exited_at is None:
                if timeout is not None and now - started > timeout:
                    timed_out = True
                    stop()
                elif sandbox is not None and (reason := sandbox.watch()):
                    limit_reason = reason
                    _kill_group(proc, signal.SIGKILL)
                    term_sent_at = now
                elif now - last_cancel_check >= FLUSH_SECONDS:
                    last_cancel_check = now
                    if should_cancel():
                        canceled = True
                        stop()
            if term_sent_at is not None and now - term_sent_at > grace:
                _kill_group(proc, signal.SIGKILL)
                if now - term_sent_at > grace + 5 and exited_at is not None:
                    break
    finally:
        if proc.poll() is None:
            _kill_group(proc, signal.SIGKILL)
        proc.wait()
        if not truncated:
            pending += decoder.decode(b"", final=True)
        flush(final=True)
        sel.close()
        if proc.stdout is not None:
            proc.stdout.close()
        # a step leaves nothing behind: background children still in its group are killed
        _kill_group(proc, signal.SIGKILL)

    duration = time.monotonic() - started
    if sandbox is not None and not (limit_reason or timed_out or canceled):
        limit_reason = sandbox.explain(proc.returncode, duration, tail)
    return ExecResult(
        exit_code=proc.returncode,
        timed_out=timed_out,
        canceled=canceled,
        truncated=truncated,
        duration=duration,
        output_bytes=output_bytes,
        limit_reason=limit_reason,
    )
