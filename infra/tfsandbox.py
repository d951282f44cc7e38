"""Terraform in the step sandbox (portal.sandbox), and the provisioner rule.

A terraform command sees the system read-only, its run's directory (configuration, checkout,
saved plan), the workspace's ``tfdata`` (``TF_DATA_DIR``) and its local state directory
read-write, and read-only: the terraform binary, the plugin cache (``TF_PLUGIN_CACHE_DIR``), the CLI configuration
file and the installation's ``TERRAFORM_READ_PATHS``. Nothing else: no other workspace's state,
no ``var/``, no Backline source; ``/proc/self/environ`` holds only the environment Backline
gives terraform.

Its network is ``isolated`` (``portal.sandbox_net``): providers and remote backends are reachable
outbound, the host's loopback and own addresses are not. The pg backend reaches PostgreSQL only
through the run's state socket (``infra.tfforward``), bound read-only at ``/run/backline-pg``.

``local-exec`` and ``remote-exec`` provisioners run commands outside Terraform's model of the
world; a configuration that declares one is refused at plan unless an org admin allowed
provisioners for the workspace (``Workspace.allow_provisioners``).
"""

import json
import re
from pathlib import Path

from django.conf import settings

from portal import sandbox
from portal.sandbox import Limits, Policy

EXEC_PROVISIONERS = ("local-exec", "remote-exec")
BLOCK_COMMENT_RE = re.compile(r"/\*.*?\*/", re.DOTALL)
LINE_COMMENT_RE = re.compile(r"(?m)(#|//).*$")
HCL_PROVISIONER_RE = re.compile(r'\bprovisioner\s+"?(local-exec|remote-exec)"?\s*\{')
MAX_SCAN_FILES = 5000


def policy(binary: str, run_dir: Path, data_dir: Path, state_dir: Path, env: dict) -> Policy | None:
    if not sandbox.enabled():
        return None
    ro = [Path(binary).resolve()] if binary else []
    ro += [Path(p) for p in settings.TERRAFORM_READ_PATHS]
    for key in ("TF_PLUGIN_CACHE_DIR", "TF_CLI_CONFIG_FILE", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        if env.get(key):
            ro.append(Path(env[key]))
    for path in (run_dir, data_dir, state_dir):
        path.mkdir(parents=True, exist_ok=True)
    hide = [Path(settings.WORKSPACE_ROOT), Path(settings.VAR_DIR), Path(settings.BASE_DIR)]
    return Policy(
        rw=[run_dir, data_dir, state_dir], ro=ro, hide=hide, network="isolated", limits=Limits()
    )


def _hcl_finds(text: str) -> list[str]:
    text = BLOCK_COMMENT_RE.sub("", text)
    text = LINE_COMMENT_RE.sub("", text)
    return HCL_PROVISIONER_RE.findall(text)


def _json_finds(value) -> list[str]:
    """Provisioner types under any ``provisioner`` key of a .tf.json document."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "provisioner":
                blocks = item if isinstance(item, list) else [item]
                for block in blocks:
                    if isinstance(block, dict):
                        found += [k for k in block if k in EXEC_PROVISIONERS]
            found += _json_finds(item)
    elif isinstance(value, list):
        for item in value:
            found += _json_finds(item)
    return found


def exec_provisioners(*roots: Path) -> list[str]:
    """``file: provisioner`` for every local-exec / remote-exec block in the .tf and .tf.json
    files under ``roots`` (the configuration and the modules ``terraform init`` fetched)."""
    out = []
    seen = 0
    for root in roots:
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if not path.is_file() or not path.name.endswith((".tf", ".tf.json")):
                continue
            seen += 1
            if seen > MAX_SCAN_FILES:
                return [*out, f"more than {MAX_SCAN_FILES} configuration files (not scanned)"]
            text = path.read_text(errors="replace")
            if path.name.endswith(".tf.json"):
                try:
                    finds = _json_finds(json.loads(text))
                except ValueError:
                    finds = []
            else:
                finds = _hcl_finds(text)
            out += [f"{path.relative_to(root)}: {kind}" for kind in finds]
    return out


def provisioner_refusal(ws, *roots: Path) -> str:
    """The message a plan is refused with, '' when it may go on."""
    if ws.allow_provisioners:
        return ""
    finds = exec_provisioners(*roots)
    if not finds:
        return ""
    return (
        "This configuration declares local-exec/remote-exec provisioners ("
        + "; ".join(finds[:5])
        + "). They run commands outside Terraform's plan; only an org admin can allow them for "
        "this workspace. Not planned."
    )
