"""The step executor with real subprocesses: masking, streaming, timeout, cancel, cap."""

import base64
import os
import time

import pytest

from portal.executor import run_process
from portal.masking import Masker

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
SECRET = "s3cr3t-Value-42"
MULTI = "-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34GkxFhD9\n0abcdefGHIJKLmnop\n-----END KEY-----"


def run(script, **kw):
    chunks = []
    kw.setdefault("timeout", 20)
    kw.setdefault("secrets", [])
    res = run_process(
        ["/bin/sh", "-c", script],
        cwd="/tmp",
        env={**ENV, **kw.pop("env", {})},
        on_output=chunks.append,
        **kw,
    )
    return res, chunks


def test_exit_code_and_output():
    res, chunks = run("echo hello; echo oops >&2; exit 7")
    assert res.exit_code == 7 and not res.timed_out and not res.canceled
    assert "".join(chunks) == "hello\noops\n"
    assert res.output_bytes == len("hello\noops\n")


def test_secrets_masked_plain_base64_and_multiline():
    script = (
        'echo "token=$S"; printf %s "$S" | base64; echo "$S" | base64; '
        'printf "x%s" "$S" | base64; printf "%s\\n" "$M"; printf %s "$M" | base64; '
        'printf "%s" "${S%???????}"; sleep 0.4; printf "%s\\n" "${S#????????}"'
    )
    res, chunks = run(script, env={"S": SECRET, "M": MULTI}, secrets=[SECRET, MULTI])
    text = "".join(chunks)
    assert res.exit_code == 0
    assert "token=***" in text
    forbidden = [
        SECRET,
        base64.b64encode(SECRET.encode()).decode(),
        "MIIBOgIBAAJBAKj34GkxFhD9",
        "0abcdefGHIJKLmnop",
    ]
    forbidden.append(base64.b64encode(MULTI.encode()).decode()[:60])
    forbidden.append(base64.b64encode(("x" + SECRET).encode()).decode()[4:20])
    for f in forbidden:
        assert f not in text, f"{f!r} leaked in {text!r}"
    # a secret written in two halves with a pause still does not leak
    assert "s3cr3t-V" not in text.replace("***", "")


def test_masker_directly():
    m = Masker(["abc123xyz"])
    assert m.mask("a abc123xyz b") == "a *** b"
    assert m.mask(base64.b64encode(b"abc123xyz").decode()) == "***"
    assert Masker([]).mask("abc") == "abc"


def _gone(pid: int, timeout: float = 30) -> bool:
    """Whether ``pid`` is gone (or a zombie) within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_timeout_kills_the_whole_process_group(tmp_path):
    pidfile = tmp_path / "child.pid"
    res, chunks = run(
        f"sleep 60 & echo $! > {pidfile}; echo started; wait; echo outlived", timeout=1, grace=1
    )
    assert res.timed_out and not res.canceled and res.exit_code != 0
    assert "started" in "".join(chunks) and "outlived" not in "".join(chunks)
    assert _gone(int(pidfile.read_text())), "the background child outlived the timeout"


def test_cancel_escalates_to_kill_when_term_is_ignored(tmp_path):
    pidfile = tmp_path / "sh.pid"
    t0 = time.monotonic()
    res, chunks = run(
        f"trap '' TERM; echo $$ > {pidfile}; echo waiting; sleep 30; echo survived",
        timeout=None,
        grace=0.5,
        should_cancel=lambda: time.monotonic() - t0 > 0.5,
    )
    assert res.canceled and not res.timed_out
    assert res.exit_code == -9  # SIGKILL after the grace: SIGTERM was ignored
    assert chunks and chunks[0].startswith("waiting") and "survived" not in "".join(chunks)
    assert _gone(int(pidfile.read_text()))


def test_output_streams_incrementally_and_heartbeats():
    seen = []
    beats = []
    t0 = time.monotonic()
    run_process(
        ["/bin/sh", "-c", "echo one; sleep 1; echo two"],
        cwd="/tmp",
        env=ENV,
        timeout=10,
        secrets=[],
        on_output=lambda s: seen.append((time.monotonic() - t0, s)),
        on_heartbeat=lambda: beats.append(1),
        heartbeat_every=0.2,
    )
    assert seen[0][1] == "one\n" and seen[0][0] < 0.6
    assert seen[-1][1] == "two\n" and seen[-1][0] >= 0.9
    assert len(beats) >= 3


def test_output_cap_truncates_with_notice_and_keeps_draining():
    res, chunks = run(
        "head -c 3000000 /dev/zero | tr '\\0' a; echo; echo done >&2", max_output_bytes=100_000
    )
    text = "".join(chunks)
    assert res.truncated and res.exit_code == 0
    assert res.output_bytes > 3_000_000
    assert text.split("\n[backline]")[0].count("a") == 100_000
    assert "output truncated" in text
    assert all(len(c.encode()) <= 128 * 1024 for c in chunks)


def test_background_children_do_not_outlive_the_step(tmp_path):
    pidfile = tmp_path / "bg.pid"
    res, _ = run(f"nohup sleep 60 >/dev/null 2>&1 & echo $! > {pidfile}; echo started")
    assert res.exit_code == 0
    child = int(pidfile.read_text())
    time.sleep(0.2)
    alive = (
        os.path.exists(f"/proc/{child}")
        and "Z" not in open(f"/proc/{child}/stat").read().split()[2]
    )
    assert not alive


def test_partial_lines_are_released_unless_they_may_begin_a_secret():
    m = Masker(["hunter2-secret"])
    assert m.split_safe("progress 10%") == ("progress 10%", "")
    assert m.split_safe("token: hunt") == ("token: ", "hunt")
    assert m.split_safe("token: hunter2-secret") == ("token: ***", "")
    out, keep = m.split_safe("a hunter2-secret b hunter2-sec")
    assert out == "a *** b " and keep == "hunter2-sec"
    assert m.split_safe("line\n", final=False) == ("line\n", "")


def test_a_progress_line_without_newline_is_streamed():
    seen = []
    t0 = time.monotonic()
    run_process(
        ["/bin/sh", "-c", "printf 'downloading...'; sleep 1; echo ' done'"],
        cwd="/tmp",
        env=ENV,
        timeout=10,
        secrets=["some-long-secret-value-that-is-not-printed"],
        on_output=lambda s: seen.append((time.monotonic() - t0, s)),
    )
    assert seen[0][1] == "downloading..." and seen[0][0] < 0.8


@pytest.mark.parametrize("via", ["setpriv", "preexec_fn"])
def test_the_command_dies_with_the_process_that_started_it(tmp_path, via):
    """A worker killed with SIGKILL cannot stop its step's process group itself: the kernel
    does (PR_SET_PDEATHSIG), so no step keeps running after its run is declared lost."""
    import subprocess
    import sys
    import uuid
    from pathlib import Path

    from tests.conftest import pids_with_cmdline

    marker = f"orphan-check-{uuid.uuid4().hex}"
    code = (  # the marker comes from the environment: only the step's command line holds it
        "import os\n"
        "from portal import executor\n"
        "from portal.executor import run_process\n"
        "if os.environ['VIA'] == 'preexec_fn':\n"
        "    executor.SETPRIV = None\n"
        "run_process(['sh', '-c', 'sleep 300; echo ' + os.environ['MARKER']], cwd=None,"
        " env={'PATH': '/usr/bin:/bin'}, timeout=None, secrets=[], on_output=print)\n"
    )
    worker = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "MARKER": marker, "VIA": via},
    )
    deadline = time.monotonic() + 20
    while not pids_with_cmdline(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pids_with_cmdline(marker), "the step never started"
    worker.kill()
    worker.wait(10)
    deadline = time.monotonic() + 5
    while pids_with_cmdline(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pids_with_cmdline(marker) == []


def test_a_missing_command_raises_as_popen_would(tmp_path):
    with pytest.raises(FileNotFoundError):
        run_process(
            ["no-such-command-here"],
            cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin"},
            timeout=5,
            secrets=[],
            on_output=lambda text: None,
        )
    with pytest.raises(FileNotFoundError):
        run_process(
            ["./missing.sh"],
            cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin"},
            timeout=5,
            secrets=[],
            on_output=lambda text: None,
        )
