"""The sandbox policy of a pipeline step (portal.sandbox), from the spec and the installation."""

from pathlib import Path

from portal import sandbox
from portal.sandbox import Limits, Policy


def check_available() -> str:
    """'' when steps can run as configured; else the message the run fails with."""
    if not sandbox.enabled():
        return ""
    try:
        sandbox.bwrap_binary()
    except sandbox.SandboxError as exc:
        return str(exc)
    return ""


def step_policy(spec, step_spec: dict, workdir: Path, cache: Path | None) -> Policy | None:
    """The step's sandbox: its checkout read-write, the service's git cache read-only (the
    checkout borrows its objects), the spec's limits (the step's over the top level's) and
    network. None when the installation runs steps unsandboxed."""
    if not sandbox.enabled():
        return None
    merged = {**(spec.data.get("limits") or {}), **(step_spec.get("limits") or {})}
    network = step_spec.get("network") or spec.data.get("network") or "isolated"
    ro = [cache] if cache is not None else []
    return Policy(rw=[Path(workdir)], ro=ro, network=network, limits=Limits(**merged))
