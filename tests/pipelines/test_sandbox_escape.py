"""Escape suite: real steps on a real Celery worker try to leave the bubblewrap sandbox.

Each step is what an attacker with a pushed ``backline.yml`` would run. Every attempt fails, the
run says why (the step's error for a limit, the command's own error otherwise), no worker
secret reaches the log, and the worker then runs the next job normally.
"""

import json
import os
import shlex
import socket
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from pipelines.models import PipelineRun, RunStatus
from tests.conftest import ROOT, pids_with_cmdline, token_client
from tests.pipelines.conftest import wait_for
from tests.pipelines.test_worker import log_text, over

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

STATE_MARKER = "other-squads-state-7f3a9c"
BACKGROUND = "sleep 3131"


def spec_for(command, step=None, top=None):
    lines = [f"{key}: {json.dumps(value)}" for key, value in (top or {}).items()]
    lines += ["stages:", "  - name: main", "    steps:", "      - name: attempt"]
    lines.append(f"        run: {json.dumps(command)}")
    lines += [f"        {key}: {json.dumps(value)}" for key, value in (step or {}).items()]
    return "\n".join(lines) + "\n"


def py(code):
    return f"python3 -c {shlex.quote(code)}"


def connect_unix(path):
    return py(f"import socket; s = socket.socket(socket.AF_UNIX); s.connect({str(path)!r})")


def connect_tcp(port):
    return py(f"import socket; socket.create_connection(('127.0.0.1', {port}), 3); print('tcp ok')")


def connect_any(targets):
    """Tries every (host, port); prints each refusal, exits 0 (escaped) when one connects."""
    return py(
        "import socket, sys\n"
        f"for h, p in {targets!r}:\n"
        "    try:\n"
        "        socket.create_connection((h, p), 3)\n"
        "    except OSError as e:\n"
        "        print('refused', h, p, type(e).__name__, e.errno)\n"
        "    else:\n"
        "        print('reached', h, p); sys.exit(0)\n"
        "sys.exit(1)"
    )


def own_addresses():
    """The host's own non-loopback IPv4 addresses (what `hostname -I` shows)."""
    import subprocess

    out = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
    return [a for a in out if "." in a and not a.startswith("127.")]


@pytest.fixture
def host_listener():
    """A TCP service on every address of the host (0.0.0.0), like a database bound to all
    interfaces: reachable from the host's own LAN address, outside the sandbox."""
    srv = socket.socket()
    srv.bind(("0.0.0.0", 0))
    srv.listen(16)
    yield srv.getsockname()[1]
    srv.close()


@pytest.fixture
def other_state():
    """Another workspace's state file, where the Terraform runner keeps it."""
    path = Path(settings.WORKSPACE_ROOT) / "infra" / "ws-987654" / "state" / "terraform.tfstate"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"secret": STATE_MARKER}))
    yield path
    path.unlink(missing_ok=True)


@pytest.fixture
def var_socket():
    """A listening unix socket under var/ (where the embedded Redis puts its socket)."""
    path = Path(settings.VAR_DIR) / f"escape-{os.getpid()}.sock"
    path.unlink(missing_ok=True)
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(path))
    srv.listen(5)
    yield path
    srv.close()
    path.unlink(missing_ok=True)


def attempts(worker_pids, state, sock, listener_port):
    var = Path(settings.VAR_DIR)
    pids = " ".join(str(p) for p in worker_pids)
    pg_socket = "/var/run/postgresql/.s.PGSQL.5432"
    return {
        "environ": (f"for p in {pids}; do cat /proc/$p/environ || exit 1; done", {}, {}),
        "var": (f"ls {var} && cat {var}/test-worker-*.log", {}, {}),
        "state": (f"cat {state}", {}, {}),
        "source": (f"cat {ROOT / 'manage.py'} || ls {ROOT / '.venv'}", {}, {}),
        "pg_socket": (connect_unix(pg_socket), {}, {}),
        "var_socket": (connect_unix(sock), {}, {}),
        "pg_tcp_none": (connect_tcp(5432), {"network": "none"}, {}),
        "redis_tcp_none": (connect_tcp(6379), {}, {"network": "none"}),
        # the default network (isolated): outbound, but the host's loopback is not there
        "pg_tcp": (connect_tcp(5432), {}, {}),
        "redis_tcp": (connect_tcp(6379), {}, {}),
        # nor through slirp's gateway (the host's loopback unless disabled), nor the host's own
        # addresses (a service bound to 0.0.0.0 there)
        "host_addresses": (
            connect_any(
                [("10.0.2.2", port) for port in (5432, 6379, listener_port)]
                + [(a, p) for a in own_addresses() for p in (5432, 6379, listener_port)]
            ),
            {},
            {},
        ),
        # PostgreSQL trusts 127.0.0.1 on this machine: psql as postgres, with no password
        "psql_trust": (
            "for h in 127.0.0.1 10.0.2.2 "
            + " ".join(own_addresses())
            + "; do psql -w -h $h -U postgres -d postgres -tAc 'select 7000 + 77' && exit 0; done;"
            " exit 1",
            {},
            {},
        ),
        "processes": (
            f"ps -eo pid,comm; n=$(ls -d /proc/[0-9]* | wc -l); echo procs=$n; "
            f"for p in {pids}; do test -e /proc/$p/cmdline && exit 0; done; exit 1",
            {},
            {},
        ),
        "fork_bomb": (
            "bomb() { bomb | bomb & }; bomb; sleep 1; "
            "for i in $(seq 500); do sleep 60 & done; wait",
            {"limits": {"processes": 64}},
            {},
        ),
        "big_file": ("head -c 10G /dev/zero > big.bin", {"limits": {"file_size": "100m"}}, {}),
        "big_alloc": (py("b = bytearray(8 * 2**30)"), {}, {"limits": {"memory": "1g"}}),
        "disk": (
            "for i in $(seq 60); do head -c 5M /dev/zero > f$i.bin; done; sleep 10",
            {"limits": {"disk": "40m"}},
            {},
        ),
        "cpu": ("while :; do :; done", {"limits": {"cpu_seconds": 2}}, {}),
    }


REASONS = {
    "fork_bomb": "process limit of 64 reached",
    "big_file": "file size limit exceeded (100 MiB per file)",
    "big_alloc": "memory limit 1 GiB exceeded",
    "disk": "killed: disk limit 40 MiB exceeded",
    "cpu": "killed: CPU time limit of 2 s exceeded",
}
SAYS = {
    "environ": "No such file or directory",
    "var": "No such file or directory",
    "state": "No such file or directory",
    "source": "No such file or directory",
    "pg_socket": "FileNotFoundError",
    "var_socket": "FileNotFoundError",
    "pg_tcp_none": "ConnectionRefusedError",
    "redis_tcp_none": "ConnectionRefusedError",
    "pg_tcp": "ConnectionRefusedError",
    "redis_tcp": "ConnectionRefusedError",
    "psql_trust": "127.0.0.1",
}


def trigger(client, service, ref):
    resp = client.post(f"/api/v1/services/{service.slug}/runs", {"ref": ref}, format="json")
    assert resp.status_code == 201, resp.content
    return resp.json()["id"]


def test_steps_cannot_leave_the_sandbox(
    celery_worker_proc, service, git_repo, squad, make_token, other_state, var_socket, host_listener
):
    assert settings.SANDBOX == "bwrap"
    # what the steps aim at exists on this machine, outside the sandbox
    assert Path("/var/run/postgresql/.s.PGSQL.5432").exists()
    socket.create_connection(("127.0.0.1", 5432), 3).close()
    socket.create_connection(("127.0.0.1", 6379), 3).close()
    for address in own_addresses():
        socket.create_connection((address, host_listener), 3).close()
    # PostgreSQL logs in postgres from 127.0.0.1 with no password (trust): the prize
    trusted = psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    assert trusted.execute("SELECT 40 + 2").fetchone() == (42,)
    trusted.close()
    worker_pids = [celery_worker_proc.proc.pid, *celery_worker_proc.child_pids()]
    assert "DATABASE_URL" in Path(f"/proc/{worker_pids[0]}/environ").read_text(errors="replace")

    cases = attempts(worker_pids, other_state, var_socket, host_listener)
    for name, (command, step, top) in cases.items():
        git_repo.checkout("main")
        git_repo.branch(name)
        git_repo.commit({"backline.yml": spec_for(command, step, top)}, name)
    git_repo.checkout("main")
    git_repo.commit({"backline.yml": spec_for(f"{BACKGROUND} & echo left-behind")}, "bg")

    client = token_client(make_token(squad, ["pipelines:run"]))
    ids = {name: trigger(client, service, name) for name in cases}
    ids["background"] = trigger(client, service, "main")
    runs = {n: wait_for(lambda i=i: over(i), 120, what=f"run {n}") for n, i in ids.items()}

    worker_env = Path(f"/proc/{worker_pids[0]}/environ").read_bytes().split(b"\0")
    secrets = [v.split(b"=", 1)[1].decode() for v in worker_env if b"DATABASE_URL=" in v]
    for name in cases:
        run = runs[name]
        text = log_text(run)
        assert run.status == RunStatus.FAILED, (name, run.error, text)
        assert STATE_MARKER not in text and "DJANGO_SETTINGS_MODULE" not in text, name
        assert not any(s in text for s in secrets), name
        steps = list(run.steps.all())
        assert len(steps) == 1, (name, run.error, text)
        step = steps[0]
        if name in REASONS:
            assert REASONS[name] in step.error, (name, step.error, text)
            assert REASONS[name] in run.error and REASONS[name] in text, name
        else:
            assert step.error == "" and "exit code" in run.error, (name, run.error)
        if name in SAYS:
            assert SAYS[name] in text, (name, text)
    hosts = log_text(runs["host_addresses"])
    assert "reached" not in hosts and hosts.count("refused ") == 3 * (1 + len(own_addresses()))
    assert "refused 10.0.2.2 5432 OSError 101" in hosts  # network unreachable: no host loopback
    for address in own_addresses():  # an unreachable route: EHOSTUNREACH
        assert f"refused {address} {host_listener} OSError 113" in hosts, hosts
    assert "7077" not in log_text(runs["psql_trust"])
    procs = log_text(runs["processes"])
    assert "celery" not in procs and "postgres" not in procs
    assert int(procs.rsplit("procs=", 1)[1].split()[0]) <= 5

    background = runs["background"]
    assert background.status == RunStatus.SUCCEEDED, background.error
    assert "left-behind" in log_text(background)
    wait_for(lambda: not pids_with_cmdline(BACKGROUND), 10, what="background process gone")
    assert not pids_with_cmdline("sleep 60")  # the fork bomb's processes are gone too

    # the worker runs the next job normally
    git_repo.commit({"backline.yml": spec_for("echo next job; test -f README.md")}, "next")
    next_id = trigger(client, service, "main")
    after = wait_for(lambda: over(next_id), 60, what="next run")
    assert after.status == RunStatus.SUCCEEDED, (after.error, log_text(after))
    assert "next job" in log_text(after)


def test_a_missing_bubblewrap_fails_the_run(service, squad, settings, workspace):
    """With the sandbox on and bubblewrap gone, the run fails saying so; nothing runs."""
    from pipelines import runner, services
    from portal.actors import Actor

    settings.BWRAP_BIN = "/nonexistent/bwrap"
    run, _created = services.trigger_run(service, actor=Actor.system("test"), ref="main")
    runner.execute(run.pk)
    run = PipelineRun.objects.get(pk=run.pk)
    assert run.status == RunStatus.FAILED
    assert "bubblewrap" in run.error and "not installed" in run.error
    assert not run.steps.exists()


def test_sandbox_off_warns_in_the_log_and_on_the_page(service, squad, settings, workspace, alice):
    from pipelines import runner, services
    from portal.actors import Actor
    from tests.conftest import client_for

    settings.SANDBOX = "none"
    run, _created = services.trigger_run(service, actor=Actor.system("test"), ref="main")
    runner.execute(run.pk)
    run = PipelineRun.objects.get(pk=run.pk)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert "Sandbox off (BACKLINE_SANDBOX=none)" in log_text(run)
    page = client_for(alice).get(f"/pipelines/runs/{run.pk}/").content.decode()
    assert 'id="sandbox-off"' in page
    settings.SANDBOX = "bwrap"
    page = client_for(alice).get(f"/pipelines/runs/{run.pk}/").content.decode()
    assert 'id="sandbox-off"' not in page


DNS_QUERY = (
    "import socket, struct, sys\n"
    "q = struct.pack('!HHHHHH', 0x4242, 0x0100, 1, 0, 0, 0) + b'\\x07example\\x03com\\x00'"
    " + struct.pack('!HH', 1, 1)\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)\n"
    "for _ in range(3):\n"
    "    s.sendto(q, (sys.argv[1], 53))\n"
    "    try:\n"
    "        data = s.recv(512)\n"
    "    except OSError as e:\n"
    "        print('no answer', e); continue\n"
    "    print('dns answer id', hex(struct.unpack('!H', data[:2])[0])); break\n"
)


def host_resolver_answers() -> str:
    """The host's first resolver when it answers a query from the host itself, else ''."""
    import subprocess
    import sys

    text = Path("/etc/resolv.conf").read_text() if Path("/etc/resolv.conf").exists() else ""
    servers = [line.split()[1] for line in text.splitlines() if line.startswith("nameserver ")]
    if not servers or servers[0].startswith("127."):
        return ""
    out = subprocess.run(
        [sys.executable, "-c", DNS_QUERY, servers[0]], capture_output=True, text=True, timeout=30
    )
    return servers[0] if "dns answer id 0x4242" in out.stdout else ""


def run_in_process(git_repo, service, spec_text):
    from pipelines import runner, services
    from portal.actors import Actor

    git_repo.commit({"backline.yml": spec_text}, "spec")
    run, _created = services.trigger_run(service, actor=Actor.system("test"), ref="main")
    runner.execute(run.pk)
    return PipelineRun.objects.get(pk=run.pk)


def test_the_isolated_network_goes_out_through_its_own_tap(service, git_repo, squad, workspace):
    """The default network has a tap device (slirp4netns) with a default route, and a query to
    slirp's DNS (relayed to the host's non-loopback resolver) is answered; with `network: none`
    there is neither."""
    resolver = host_resolver_answers()
    command = "ip -o -4 addr show; ip route; " + py(DNS_QUERY) + " 10.0.2.3"
    run = run_in_process(git_repo, service, spec_for(command))
    text = log_text(run)
    assert run.status == RunStatus.SUCCEEDED, (run.error, text)
    assert "tap0    inet 10.0.2.100/24" in text and "default via 10.0.2.2 dev tap0" in text
    if resolver:  # outbound to a non-loopback address (the resolver at `resolver`) works
        assert "dns answer id 0x4242" in text, (resolver, text)
    none = run_in_process(git_repo, service, spec_for(command, {"network": "none"}))
    text = log_text(none)
    assert "tap0" not in text and "dns answer" not in text, text


def test_a_missing_slirp4netns_fails_the_step_unless_it_asked_for_no_network(
    service, git_repo, squad, settings, workspace
):
    settings.SLIRP4NETNS_BIN = "/nonexistent/slirp4netns"
    run = run_in_process(git_repo, service, spec_for("echo ran-$((40 + 2))"))
    text = log_text(run)
    assert run.status == RunStatus.FAILED and "ran-42" not in text, (run.error, text)
    assert "slirp4netns" in run.error and "not installed" in run.error, run.error
    offline = run_in_process(git_repo, service, spec_for("echo offline-ok", {"network": "none"}))
    assert offline.status == RunStatus.SUCCEEDED, (offline.error, log_text(offline))
    assert "offline-ok" in log_text(offline)


def test_host_network_only_where_the_installation_allows_it(service, git_repo, squad, settings):
    from pipelines.spec import SpecError, parse

    text = spec_for("true", {"network": "host"})
    with pytest.raises(SpecError) as err:
        parse(text)
    assert err.value.field == "stages[0].steps[0].network" and err.value.line == 6, err.value
    assert "BACKLINE_SANDBOX_HOST_NETWORK" in err.value.message
    settings.SANDBOX_HOST_NETWORK = True
    assert next(parse(text).steps())[2]["network"] == "host"
