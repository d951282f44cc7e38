"""backline.yml sandbox settings: limits and network, validated against the installation."""

import ipaddress

import pytest

from pipelines.spec import SpecError, parse
from portal.sandbox import Limits, Policy, SandboxError, format_size, parse_size
from portal.sandbox_net import host_addresses

STEPS = "stages:\n  - name: b\n    steps:\n      - name: s\n        run: make\n"


def test_limits_and_network_at_top_level_and_per_step():
    spec = parse(
        "limits: {memory: 2g, cpu_seconds: 600, processes: 256, file_size: 1g, disk: 5g}\n"
        "network: none\n" + STEPS + "        limits: {memory: 512m}\n        network: isolated\n"
    )
    assert spec.data["limits"] == {
        "memory": 2 * 2**30,
        "cpu_seconds": 600,
        "processes": 256,
        "file_size": 2**30,
        "disk": 5 * 2**30,
    }
    assert spec.data["network"] == "none"
    step = next(spec.steps())[2]
    assert step["limits"] == {"memory": 512 * 2**20} and step["network"] == "isolated"


@pytest.mark.parametrize(
    "text, line, field, message",
    [
        ("limits: {memory: 64g}\n" + STEPS, 1, "limits.memory", "above this installation"),
        ("limits: {processes: 100000}\n" + STEPS, 1, "limits.processes", "maximum of 512"),
        ("limits: {memory: lots}\n" + STEPS, 1, "limits.memory", "not a size"),
        ("limits: {cpu_seconds: -1}\n" + STEPS, 1, "limits.cpu_seconds", "whole number"),
        ("limits: {swap: 1g}\n" + STEPS, 1, "limits.swap", "unknown key"),
        ("network: bridge\n" + STEPS, 1, "network", "unknown network"),
        ("network: host\n" + STEPS, 1, "network", "BACKLINE_SANDBOX_HOST_NETWORK is off"),
        (STEPS + "        limits: {file_size: 9t}\n", 6, "stages[0].steps[0].limits.file_size", ""),
        (STEPS + "        network: [a]\n", 6, "stages[0].steps[0].network", "expected"),
    ],
)
def test_bad_sandbox_settings_name_line_and_field(text, line, field, message):
    with pytest.raises(SpecError) as err:
        parse(text)
    assert err.value.line == line and err.value.field == field, err.value
    assert message in err.value.message


def test_the_installation_maximum_follows_the_settings(settings):
    settings.SANDBOX_MAX_MEMORY = 8 * 2**30
    assert parse("limits: {memory: 6g}\n" + STEPS).data["limits"]["memory"] == 6 * 2**30
    assert Limits(memory=2**30).effective().processes == settings.SANDBOX_MAX_PROCESSES


def test_sizes():
    assert parse_size("2g") == parse_size("2GiB") == 2 * 2**30
    assert parse_size(1024) == 1024 and parse_size("1.5k") == 1536
    assert format_size(2 * 2**30) == "2 GiB" and format_size(1536) == "1.5 KiB"
    with pytest.raises(ValueError):
        parse_size("0")


def test_policy_argv(tmp_path, settings):
    policy = Policy(rw=[tmp_path], ro=[tmp_path.parent], network="none", limits=Limits(processes=9))
    argv = policy.wrap(["true"])
    assert "--nproc=9" in argv and "--unshare-net" in argv and argv[-1] == "true"
    assert "--unshare-pid" in argv and "--die-with-parent" in argv and "--new-session" in argv
    assert ["--bind", str(tmp_path), str(tmp_path)] == argv[
        argv.index("--bind") : argv.index("--bind") + 3
    ]
    assert "/run" not in argv and str(settings.VAR_DIR) not in argv


def test_a_timeout_terms_the_sandboxed_command_itself(tmp_path):
    """TERM reaches the command (terraform's graceful interrupt), not only bwrap, which would
    SIGKILL it through --die-with-parent."""
    from portal.executor import run_process

    out = []
    res = run_process(
        [
            "/bin/sh",
            "-c",
            "trap 'echo got-term; exit 7' TERM; echo started; while :; do sleep 0.1; done",
        ],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        timeout=1,
        secrets=[],
        on_output=out.append,
        sandbox=Policy(rw=[tmp_path]),
        grace=10,
    )
    # exit code 7 is the command's own TERM trap: not bwrap's SIGKILL, not a kill after the grace
    assert res.timed_out and res.exit_code == 7 and not res.limit_reason
    assert "got-term" in "".join(out)


def test_the_default_network_is_isolated_and_host_needs_the_setting(tmp_path, settings):
    policy = Policy(rw=[tmp_path])
    assert policy.network == "isolated"
    net = policy.network_setup()
    assert net is not None
    try:
        argv = policy.wrap(["true"], net)
        at = argv.index("--unshare-net")
        assert argv[at + 1 : at + 5] == [
            "--info-fd",
            str(net.pass_fds()[0]),
            "--block-fd",
            str(net.pass_fds()[1]),
        ]
    finally:
        net.close()
    with pytest.raises(SandboxError, match="BACKLINE_SANDBOX_HOST_NETWORK"):
        Policy(rw=[tmp_path], network="host")
    settings.SANDBOX_HOST_NETWORK = True
    assert "--unshare-net" not in Policy(rw=[tmp_path], network="host").wrap(["true"])


def test_the_host_addresses_blocked_are_this_machines_own(tmp_path):
    """Every non-loopback IPv4 address of the host is in the list of unreachable routes."""
    import subprocess

    own = [
        a
        for a in subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
        if "." in a and not a.startswith("127.")
    ]
    blocked = [ipaddress.ip_network(n) for n in host_addresses()]
    assert all(not n.is_loopback for n in blocked)
    for address in own:
        assert any(ipaddress.ip_address(address) in n for n in blocked), (address, blocked)
