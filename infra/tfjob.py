"""Running terraform for one phase of a run: the working directory, the environment, the log.

Layout under ``WORKSPACE_ROOT/infra/ws-<state key>/``: ``state/terraform.tfstate`` (local backend;
the pg backend keeps the state in PostgreSQL, ``infra.tfstate``),
``tfdata/`` (``TF_DATA_DIR``: backend and provider cache), ``runs/<run id>/src`` (the
configuration of that run) and ``runs/<run id>/plan.tfplan`` (its saved plan; apply uses exactly
that file). Every terraform call is an argv list run by ``portal.executor.run_process`` in its
own process group, with sensitive values masked before anything is stored.
"""

import base64
import hashlib
import json
import os
import shutil
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

from infra import tfforward, tfsandbox, tfstate
from infra.models import LogChunk, SavedPlan, TerraformRun, Variable, Workspace
from infra.planparse import PlanParseError, state_outputs
from portal import sandbox, sandbox_net
from portal.executor import run_process
from portal.gitsource import SourceError, git_env, remote_for, valid_ref
from portal.joblog import LogWriter
from portal.masking import Masker
from portal.urlsecrets import redact_credentials, url_credentials

PASS_ENV = (
    "TF_CLI_CONFIG_FILE",
    "TF_PLUGIN_CACHE_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
)
OVERRIDE_FILE = "zz_backline_backend_override.tf"


def run_timeout() -> float:
    return settings.INFRA_RUN_TIMEOUT


def cancel_grace() -> float:
    return settings.INFRA_CANCEL_GRACE


# --- paths and state ----------------------------------------------------------------------------
def ws_root(ws) -> Path:
    """The workspace's folder on this worker, keyed by its ``state_key`` (never reused)."""
    return Path(settings.WORKSPACE_ROOT) / "infra" / f"ws-{ws.state_key}"


def state_path(ws) -> Path:
    return tfstate.local_state_path(ws)


def run_dir(run) -> Path:
    return ws_root(run.workspace) / "runs" / str(run.pk)


def plan_file(run) -> Path:
    return run_dir(run) / "plan.tfplan"


def read_local_state(ws):
    """(serial, lineage) of the workspace's state where Backline keeps it (local file or pg),
    (None, "") when there is none."""
    try:
        return tfstate.current(ws)
    except tfstate.StateError:
        return None, ""


def build_env(ws, data_dir: Path):
    """The environment for terraform and the secrets to mask."""
    home = Path(settings.WORKSPACE_ROOT) / "infra" / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
    }
    for key in PASS_ENV:
        if os.environ.get(key):
            env[key] = os.environ[key]
    if env.get("TF_CLI_CONFIG_FILE") and not Path(env["TF_CLI_CONFIG_FILE"]).exists():
        del env["TF_CLI_CONFIG_FILE"]  # a missing file only adds a warning to every command
    secrets = []
    for var in Variable.objects.filter(workspace=ws):
        name = f"TF_VAR_{var.key}" if var.category == Variable.Category.TERRAFORM else var.key
        env[name] = var.value
        if var.sensitive and var.value:
            secrets.append(var.value)
    secrets += url_credentials(ws.repository_url)  # a clone URL's user:token@ part
    env.update(
        {
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "CHECKPOINT_DISABLE": "1",
            "TF_DATA_DIR": str(data_dir),
            # one process, no panicwrap child: the executor's die-with-the-worker signal then
            # reaches the terraform that holds the state lock (ignored by versions without it)
            "TF_FORK": "0",
        }
    )
    return env, secrets


def resolve_binary(ws) -> str:
    binary = ws.binary
    found = shutil.which(binary)
    if not found:
        raise RunError(
            f"The terraform binary {binary!r} was not found (set TERRAFORM_BIN or the "
            "workspace's binary)."
        )
    return found


class RunError(Exception):
    pass


def json_document(text: str):
    """The JSON object in a command's output (stderr is merged in: skip warnings around it)."""
    start = text.find("{")
    while start != -1:
        try:
            value, _end = json.JSONDecoder().raw_decode(text, start)
            if isinstance(value, dict):
                return value
        except ValueError:
            pass
        start = text.find("\n{", start + 1)
        start = start + 1 if start != -1 else -1
    raise PlanParseError("terraform did not return a JSON document: " + text.strip()[:300])


# --- the run log --------------------------------------------------------------------------------
class RunLog(LogWriter):
    """The run's log (``portal.joblog.LogWriter``): owned while the run is in ``phase_status``;
    refreshes the heartbeat, sees cancels, masks sensitive values."""

    model = TerraformRun
    chunk_model = LogChunk

    def __init__(self, run, phase_status, secrets=()):
        masker = Masker(secrets)
        super().__init__(run, phase_status, mask=masker.mask if masker else None)


class JsonLines:
    """Turns terraform's ``-json`` machine-readable UI into readable log lines; keeps the
    diagnostics and the outputs (sensitive values hidden)."""

    def __init__(self, runlog: RunLog):
        self.runlog = runlog
        self.buf = ""
        self.diagnostics = []
        self.outputs = None
        self.changes = None

    def feed(self, text: str):
        self.buf += text
        if "\n" not in self.buf:
            return
        lines, self.buf = self.buf.rsplit("\n", 1)
        self.runlog.write("".join(self.render(line) for line in lines.split("\n")))

    def close(self):
        if self.buf:
            self.runlog.write(self.render(self.buf))
            self.buf = ""

    def render(self, line: str) -> str:
        stripped = line.strip()
        if not stripped.startswith("{"):
            return line + "\n"
        try:
            msg = json.loads(stripped)
        except ValueError:
            return line + "\n"
        kind = msg.get("type", "")
        text = msg.get("@message", "")
        if kind == "diagnostic":
            diag = msg.get("diagnostic") or {}
            entry = {
                "severity": diag.get("severity", msg.get("@level", "error")),
                "summary": diag.get("summary", text),
                "detail": diag.get("detail", ""),
                "filename": (diag.get("range") or {}).get("filename", ""),
                "line": ((diag.get("range") or {}).get("start") or {}).get("line"),
                "code": (diag.get("snippet") or {}).get("code", ""),
            }
            self.diagnostics.append(entry)
            return format_diagnostic(entry)
        if kind == "outputs":
            raw = msg.get("outputs") or {}
            if any("action" in o for o in raw.values()):  # planned output changes (TF ≥ 1.1)
                rows = [f"  {name}: {o.get('action', '')}" for name, o in sorted(raw.items())]
                return "Output changes:\n" + "".join(r + "\n" for r in rows) if rows else ""
            self.outputs = state_outputs(raw)
            rows = [f"  {name} = {o['display']}" for name, o in self.outputs.items()]
            return "Outputs:\n" + "".join(r + "\n" for r in rows) if rows else ""
        if kind == "change_summary":
            self.changes = msg.get("changes")
        if kind == "version":
            return f"{text} (UI {msg.get('ui', '')})\n"
        return (text.rstrip("\n") + "\n") if text else ""


def format_diagnostic(d: dict) -> str:
    where = ""
    if d.get("filename"):
        where = f"\n  on {d['filename']}" + (f" line {d['line']}" if d.get("line") else "")
        if d.get("code"):
            where += f":\n    {d['code']}"
    detail = f"\n  {d['detail']}" if d.get("detail") else ""
    return f"{d['severity'].capitalize()}: {d['summary']}{where}{detail}\n"


# --- steps --------------------------------------------------------------------------------------
class Job:
    """One phase (plan or apply) of one run on this worker."""

    def __init__(self, run: TerraformRun, phase_status: str):
        self.run = run
        self.ws = run.workspace
        self.root = ws_root(self.ws)
        self.data_dir = self.root / "tfdata"
        self.dir = run_dir(run)
        self.src = self.dir / "src"
        self.env, self.secrets = build_env(self.ws, self.data_dir)
        if self.ws.backend == Workspace.Backend.PG:
            # the state role's password: in terraform's environment only, masked everywhere
            password = tfstate.role_password(self.ws)
            self.env["PGPASSWORD"] = password
            self.secrets.append(password)
        self.runlog = RunLog(run, phase_status, self.secrets)
        self._sandbox = False  # not decided yet
        self.state_socket = None

    def sandbox(self):
        """The sandbox terraform runs in (None when the installation turned it off)."""
        if self._sandbox is False:
            try:
                if sandbox.enabled():
                    sandbox.bwrap_binary()
            except sandbox.SandboxError as exc:
                raise RunError(str(exc)) from None
            if sandbox.enabled() and not sandbox_net.slirp_binary():
                raise RunError(sandbox_net.missing_message())
            self._sandbox = tfsandbox.policy(
                getattr(self, "binary", ""),
                self.dir,
                self.data_dir,
                state_path(self.ws).parent,
                self.env,
            )
            if self._sandbox is None:
                self.runlog.write(f"\n[backline] {sandbox.off_warning()}\n")
            else:
                self.env["HOME"] = str(self.dir)
                self._open_state_socket(self._sandbox)
        return self._sandbox

    def _open_state_socket(self, policy) -> None:
        """The pg backend's one way to PostgreSQL from the sandbox (``infra.tfforward``)."""
        if self.ws.backend != Workspace.Backend.PG:
            return
        try:
            self.state_socket = tfstate.state_socket(self.ws)
        except (tfstate.StateError, OSError) as exc:
            raise RunError(f"The state socket could not be opened: {exc}") from None
        policy.binds.append((self.state_socket.dir, tfforward.SOCKET_DIR))

    def close(self) -> None:
        """The end of the phase: the state socket is closed."""
        if self.state_socket is not None:
            self.state_socket.close()
            self.state_socket = None

    def header(self, argv):
        shown = " ".join(Path(argv[0]).name if i == 0 else a for i, a in enumerate(argv))
        self.runlog.write(f"\n$ {shown}\n")

    def call(self, argv, *, json_ui=True, capture=None, cwd=None, max_bytes=10 * 2**20):
        self.header(argv)
        lines = JsonLines(self.runlog) if json_ui and capture is None else None

        def on_output(text):
            if capture is not None:
                capture.append(text)
            elif lines is not None:
                lines.feed(text)
            else:
                self.runlog.write(text)

        policy = self.sandbox()
        result = run_process(
            argv,
            cwd=cwd or self.src,
            sandbox=policy,
            env=self.env,
            timeout=run_timeout(),
            secrets=self.secrets,
            on_output=on_output,
            should_cancel=self.runlog.should_cancel,
            on_heartbeat=self.runlog.heartbeat,
            heartbeat_every=5.0,
            max_output_bytes=max_bytes,
            grace=cancel_grace(),
        )
        if lines is not None:
            lines.close()
        if result.canceled and not self.runlog.gone:
            self.runlog.write(
                "\n[backline] Canceled: terraform was interrupted (SIGTERM) and its process "
                f"group killed if still running after {cancel_grace():g} s.\n"
            )
        elif result.timed_out:
            self.runlog.write(f"\n[backline] Timed out after {run_timeout():g} s.\n")
        elif result.limit_reason:
            self.runlog.write(f"\n[backline] terraform {result.limit_reason}.\n")
            raise RunError(f"terraform {result.limit_reason}.")
        return result, lines

    def interrupted(self, result) -> str | None:
        if result.canceled:
            return "canceled"
        if result.timed_out:
            return "timed_out"
        return None

    # -- source
    def prepare_source(self):
        if self.src.exists():
            shutil.rmtree(self.src)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.ws.source == Workspace.Source.GIT:
            self.checkout()
        else:
            self.src.mkdir(parents=True)
            if not self.ws.files:
                raise RunError("The workspace has no stored configuration: add a .tf file.")
            for name, content in self.ws.files.items():
                (self.src / name).write_text(content)
        self.write_backend()

    def write_backend(self):
        """The installation's backend block (the local file or the workspace's pg schema), as an
        override file that replaces any backend of the code; none for ``configured``."""
        ws = self.ws
        if ws.backend == Workspace.Backend.LOCAL:
            state = state_path(ws)
            state.parent.mkdir(parents=True, exist_ok=True)
            self._carry_from_pg(state)
            text = (
                'terraform {\n  backend "local" {\n    path = '
                + json.dumps(str(state))
                + "\n  }\n}\n"
            )
        elif ws.backend == Workspace.Backend.PG:
            try:
                local = state_path(ws)
                seed = local.read_text() if local.is_file() else None
                tfstate.ensure_pg(ws, seed=seed)
                text = tfstate.backend_block(ws)
                if seed is not None and tfstate.current(ws)[1] == tfstate.serial_lineage(seed)[1]:
                    local.rename(local.with_name(local.name + ".moved-to-pg"))
                    self.runlog.write("\n[backline] The local state was moved to PostgreSQL.\n")
            except tfstate.StateError as exc:
                raise RunError(str(exc)) from None
        else:
            return
        (self.src / OVERRIDE_FILE).write_text(text)

    def _carry_from_pg(self, state: Path) -> None:
        """A workspace moved from pg back to local starts from its pg state."""
        if state.exists() or not tfstate.pg_available():
            return
        try:
            text = tfstate.read_pg(self.ws)
        except tfstate.StateError:
            return
        if text and tfstate.serial_lineage(text)[0]:
            state.write_text(text)
            owner = state.parent.stat()
            if os.geteuid() == 0:  # the sandbox's uid owns the folder (portal.sandbox.prepare)
                os.chown(state, owner.st_uid, owner.st_gid)
            self.runlog.write("\n[backline] The state was copied from PostgreSQL.\n")

    def lock_args(self) -> list[str]:
        """pg states lock with advisory locks: wait for one rather than fail at once."""
        return ["-lock-timeout=300s"] if self.ws.backend == Workspace.Backend.PG else []

    # -- the saved plan, kept in the database so that any worker can apply it; encrypted (a plan
    # file holds the values of every variable, sensitive ones too)
    def save_plan(self) -> None:
        data = plan_file(self.run).read_bytes()
        SavedPlan.objects.update_or_create(
            run=self.run,
            defaults={
                "data": _plan_cipher().encrypt(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            },
        )

    def restore_plan(self) -> bool:
        """Write the run's saved plan from the database into this worker's run folder."""
        saved = SavedPlan.objects.filter(run=self.run).first()
        if saved is None:
            return False
        try:
            data = _plan_cipher().decrypt(bytes(saved.data))
        except InvalidToken:
            data = b""
        if hashlib.sha256(data).hexdigest() != saved.sha256:
            raise RunError(
                "The saved plan of this run cannot be read (damaged, or SECRET_KEY changed); "
                "start a new plan."
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        plan_file(self.run).write_bytes(data)
        self.runlog.write("\n[backline] Applying the plan saved by the worker that planned.\n")
        return True

    def checkout(self):
        ws = self.ws
        if not valid_ref(ws.ref):
            raise RunError(f"{ws.ref!r} is not a valid branch or tag name.")
        try:
            remote = remote_for(ws.repository_url)  # the outbound URL guard
        except SourceError as exc:
            raise RunError(f"The repository cannot be cloned: {exc}") from None
        url = remote.url
        dest = self.dir / "checkout"
        if dest.exists():
            shutil.rmtree(dest)
        argv = ["git", *remote.config, "clone", "--quiet", "--depth", "1", "--branch", ws.ref]
        argv += ["--", url, str(dest)]
        shown = redact_credentials(url)
        self.runlog.write(f"\n$ git clone --depth 1 --branch {ws.ref} {shown}\n")
        result = run_process(
            argv,
            cwd=self.dir,
            env=git_env(),
            timeout=600,
            secrets=self.secrets,
            on_output=self.runlog.write,
            should_cancel=self.runlog.should_cancel,
            on_heartbeat=self.runlog.heartbeat,
            grace=cancel_grace(),
        )
        if self.interrupted(result):
            raise Interrupted(self.interrupted(result))
        if result.exit_code != 0:
            raise RunError(f"git clone of {shown} at {ws.ref} failed (exit {result.exit_code}).")
        sub = dest / (ws.path or "")
        if not sub.resolve().is_relative_to(dest.resolve()) or not sub.is_dir():
            raise RunError(f"The path {ws.path!r} does not exist in {shown} at {ws.ref}.")
        self.src.symlink_to(sub.resolve(), target_is_directory=True)

    def state_now(self):
        """(serial, lineage) of the state now: read directly where Backline keeps it, with
        ``terraform state pull`` for a backend from the code."""
        if self.ws.backend != Workspace.Backend.CONFIGURED:
            try:
                return tfstate.current(self.ws)
            except tfstate.StateError as exc:
                raise RunError(str(exc)) from None
        out = []
        result, _ = self.call(
            [self.binary, "state", "pull"], capture=out, json_ui=False, max_bytes=256 * 2**20
        )
        if result.exit_code != 0:
            return None, ""
        try:
            data = json_document("".join(out) or "{}")
        except ValueError:
            return None, ""
        return data.get("serial"), data.get("lineage", "")


def _plan_cipher() -> Fernet:
    """Fernet under a key derived from SECRET_KEY (the same on every worker)."""
    key = hashlib.sha256(b"backline-saved-terraform-plan:" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


class Interrupted(Exception):
    pass
