"""Worker side of a Terraform run: claim, prepare the working directory, run terraform, finish.

Layout under ``WORKSPACE_ROOT/infra/ws-<id>/``: ``state/terraform.tfstate`` (local backend),
``tfdata/`` (``TF_DATA_DIR``: backend and provider cache), ``runs/<run id>/src`` (the
configuration of that run) and ``runs/<run id>/plan.tfplan`` (its saved plan; apply uses exactly
that file). Every terraform call is an argv list run by ``portal.executor.run_process`` in its
own process group, with sensitive values masked before anything is stored.
"""

import json
import logging
import os
import shutil
import socket
from pathlib import Path

from django.conf import settings

from infra import services, tfsandbox
from infra.models import DriftStatus, LogChunk, RunStatus, TerraformRun, Variable, Workspace
from infra.planparse import (
    SENSITIVE,
    PlanParseError,
    parse_plan,
    plan_line,
    show,
    state_outputs,
)
from portal import sandbox
from portal.actors import Actor
from portal.executor import Masker, run_process
from portal.joblog import LogWriter

log = logging.getLogger(__name__)

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


def worker_name():
    return f"{socket.gethostname()}:{os.getpid()}"


# --- paths and state ----------------------------------------------------------------------------
def ws_root(ws) -> Path:
    return Path(settings.WORKSPACE_ROOT) / "infra" / f"ws-{ws.pk}"


def state_path(ws) -> Path:
    return ws_root(ws) / "state" / "terraform.tfstate"


def run_dir(run) -> Path:
    return ws_root(run.workspace) / "runs" / str(run.pk)


def plan_file(run) -> Path:
    return run_dir(run) / "plan.tfplan"


def read_local_state(ws):
    """(serial, lineage) of the workspace's local state file, (None, "") when there is none."""
    try:
        data = json.loads(state_path(ws).read_text())
    except (OSError, ValueError):
        return None, ""
    return data.get("serial"), data.get("lineage", "")


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
        self.runlog = RunLog(run, phase_status, self.secrets)
        self._sandbox = False  # not decided yet

    def sandbox(self):
        """The sandbox terraform runs in (None when the installation turned it off)."""
        if self._sandbox is False:
            try:
                if sandbox.enabled():
                    sandbox.bwrap_binary()
            except sandbox.SandboxError as exc:
                raise RunError(str(exc)) from None
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
        return self._sandbox

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
        if self.ws.backend == Workspace.Backend.LOCAL:
            state = state_path(self.ws)
            state.parent.mkdir(parents=True, exist_ok=True)
            (self.src / OVERRIDE_FILE).write_text(
                'terraform {\n  backend "local" {\n    path = '
                + json.dumps(str(state))
                + "\n  }\n}\n"
            )

    def checkout(self):
        from portal.gitsource import clone_url, git_env, valid_ref

        ws = self.ws
        if not valid_ref(ws.ref):
            raise RunError(f"{ws.ref!r} is not a valid branch or tag name.")
        url = clone_url(ws.repository_url)
        dest = self.dir / "checkout"
        if dest.exists():
            shutil.rmtree(dest)
        argv = ["git", "clone", "--quiet", "--depth", "1", "--branch", ws.ref, "--", url, str(dest)]
        self.runlog.write(f"\n$ git clone --depth 1 --branch {ws.ref} {url}\n")
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
            raise RunError(f"git clone of {url} at {ws.ref} failed (exit {result.exit_code}).")
        sub = dest / (ws.path or "")
        if not sub.resolve().is_relative_to(dest.resolve()) or not sub.is_dir():
            raise RunError(f"The path {ws.path!r} does not exist in {url} at {ws.ref}.")
        self.src.symlink_to(sub.resolve(), target_is_directory=True)

    def state_now(self):
        if self.ws.backend == Workspace.Backend.LOCAL:
            return read_local_state(self.ws)
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


class Interrupted(Exception):
    pass


def _fail(run_id, expected, message, diagnostics=None):
    fields = {"error": message[:10000]}
    if diagnostics:
        fields["diagnostics"] = diagnostics[:50]
    services.finish(
        run_id,
        expected,
        RunStatus.ERRORED,
        actor=Actor.system("terraform-runner", door="worker"),
        **fields,
    )


def _interrupted(run_id, expected, why):
    if why == "canceled":
        # canceled by a person, or the run left this phase (lost / force-unlocked): only the
        # former still matches ``expected``.
        services.finish(run_id, expected, RunStatus.CANCELED)
    else:
        _fail(run_id, expected, f"Timed out after {run_timeout():.0f} s; terraform was stopped.")


def execute_plan(run_id) -> str:
    """pending → planning → planned | planned_and_finished | errored | canceled."""
    if not services.claim(run_id, "plan", worker_name()):
        return "not claimed"
    run = TerraformRun.objects.select_related("workspace").get(pk=run_id)
    job = Job(run, RunStatus.PLANNING)
    refresh_only = run.kind == TerraformRun.Kind.DRIFT
    try:
        job.binary = resolve_binary(job.ws)
        job.prepare_source()
        result, _ = job.call(
            [job.binary, "init", "-input=false", "-no-color", "-reconfigure"], json_ui=False
        )
        if job.interrupted(result):
            raise Interrupted(job.interrupted(result))
        if result.exit_code != 0:
            raise RunError(f"terraform init failed (exit {result.exit_code}); see the log.")
        refused = tfsandbox.provisioner_refusal(job.ws, job.src, job.data_dir / "modules")
        if refused:
            job.runlog.write(f"\n[backline] {refused}\n")
            raise RunError(refused)
        serial, lineage = job.state_now()
        argv = [job.binary, "plan", "-input=false", "-json", "-detailed-exitcode"]
        if refresh_only:
            argv.append("-refresh-only")
        argv.append(f"-out={plan_file(run)}")
        result, lines = job.call(argv)
        if job.interrupted(result):
            raise Interrupted(job.interrupted(result))
        if result.exit_code not in (0, 2):
            first = lines.diagnostics[0]["summary"] if lines and lines.diagnostics else ""
            if refresh_only:
                services.record_drift(run, DriftStatus.ERROR, [])
            _fail(
                run_id,
                RunStatus.PLANNING,
                f"terraform plan failed (exit {result.exit_code})"
                + (f": {first}" if first else "."),
                lines.diagnostics if lines else None,
            )
            return RunStatus.ERRORED
        out = []
        result, _ = job.call(
            [job.binary, "show", "-json", str(plan_file(run))],
            capture=out,
            json_ui=False,
            max_bytes=256 * 2**20,
        )
        if job.interrupted(result):
            raise Interrupted(job.interrupted(result))
        if result.exit_code != 0:
            raise RunError(f"terraform show failed (exit {result.exit_code}).")
        summary = parse_plan(json_document("".join(out)), refresh_only=refresh_only)
        job.runlog.write(summary_line(summary))
        has_changes = summary["has_changes"]
        if refresh_only:
            services.record_drift(
                run, DriftStatus.DRIFTED if summary["drift"] else DriftStatus.NONE, summary["drift"]
            )
        final = (
            RunStatus.PLANNED
            if has_changes and not refresh_only
            else RunStatus.PLANNED_AND_FINISHED
        )
        services.finish(
            run_id,
            RunStatus.PLANNING,
            final,
            summary=summary,
            has_changes=has_changes,
            diagnostics=lines.diagnostics if lines else [],
            state_serial_at_plan=serial,
            state_lineage_at_plan=lineage or "",
        )
    except Interrupted as exc:
        _interrupted(run_id, RunStatus.PLANNING, str(exc))
        return str(exc)
    except (RunError, PlanParseError) as exc:
        _fail(run_id, RunStatus.PLANNING, str(exc))
        return RunStatus.ERRORED
    except Exception as exc:  # noqa: BLE001 - a run must never stay stuck in planning
        log.exception("terraform plan of run %s crashed", run_id)
        _fail(run_id, RunStatus.PLANNING, f"Internal error while planning: {exc}")
        return RunStatus.ERRORED
    if final == RunStatus.PLANNED and run.auto_apply:
        if services.auto_confirm(run_id):
            return execute_apply(run_id)
    return final


def summary_line(s: dict) -> str:
    if s.get("refresh_only"):
        n = len(s["drift"])
        return f"\nDrift check: {n} change{'s' if n != 1 else ''} made outside Terraform.\n"
    if not s.get("applyable", s.get("has_changes")):
        return "\nPlan summary: no changes.\n"
    moves = "".join(f"\n  moved: {m['from']} -> {m['to']}" for m in s.get("moves", []))
    return (
        f"\n{plan_line(s)} {s['output_changes']} output change"
        f"{'s' if s['output_changes'] != 1 else ''}.{moves}\n"
    )


def execute_apply(run_id) -> str:
    """confirmed → applying → applied | errored | canceled (or discarded when stale)."""
    if not services.claim(run_id, "apply", worker_name()):
        return "not claimed"
    run = TerraformRun.objects.select_related("workspace").get(pk=run_id)
    job = Job(run, RunStatus.APPLYING)
    try:
        job.binary = resolve_binary(job.ws)
        if not plan_file(run).exists() or not job.src.exists():
            raise RunError(
                "The saved plan file of this run is gone from this machine; start a new plan."
            )
        stale = services.stale_reason(job.ws, run)
        if stale:
            job.runlog.write(f"\nStale plan: {stale}. Not applied.\n")
            services.finish(
                run_id,
                RunStatus.APPLYING,
                RunStatus.DISCARDED,
                discard_reason=f"Stale plan: {stale}.",
            )
            return RunStatus.DISCARDED
        result, lines = job.call(
            [job.binary, "apply", "-input=false", "-json", "-auto-approve", str(plan_file(run))]
        )
        if job.interrupted(result):
            raise Interrupted(job.interrupted(result))
        if result.exit_code != 0:
            summaries = [d["summary"] for d in (lines.diagnostics if lines else [])]
            if any("stale" in s.lower() for s in summaries):
                services.finish(
                    run_id,
                    RunStatus.APPLYING,
                    RunStatus.DISCARDED,
                    discard_reason="Stale plan: terraform refused it because the state changed "
                    "after the plan was made.",
                )
                return RunStatus.DISCARDED
            _fail(
                run_id,
                RunStatus.APPLYING,
                f"terraform apply failed (exit {result.exit_code})"
                + (f": {summaries[0]}" if summaries else "."),
                lines.diagnostics if lines else None,
            )
            return RunStatus.ERRORED
        serial, lineage = job.state_now()
        services.record_applied_state(
            job.ws.pk, serial=serial, lineage=lineage, outputs=(lines.outputs or {})
        )
        services.finish(run_id, RunStatus.APPLYING, RunStatus.APPLIED)
        return RunStatus.APPLIED
    except Interrupted as exc:
        _interrupted(run_id, RunStatus.APPLYING, str(exc))
        return str(exc)
    except RunError as exc:
        _fail(run_id, RunStatus.APPLYING, str(exc))
        return RunStatus.ERRORED
    except Exception as exc:  # noqa: BLE001
        log.exception("terraform apply of run %s crashed", run_id)
        _fail(run_id, RunStatus.APPLYING, f"Internal error while applying: {exc}")
        return RunStatus.ERRORED


__all__ = ["execute_plan", "execute_apply", "read_local_state", "SENSITIVE", "show"]
