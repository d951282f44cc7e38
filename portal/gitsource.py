"""Real git source: a bare cache per repository under WORKSPACE_ROOT, one checkout per run.

Remote URLs (``https``, ``http``, ``ssh``, ``user@host:path``) go through the outbound URL guard
(``remote_for``): the host is resolved and checked once and git is pinned to that address
(``http.curloptResolve`` for HTTP, ssh's ``HostName`` for ssh), redirects are not followed, and ``protocol.allow=never`` leaves git
only those protocols (never ``ext::``, ``fd::`` or submodule tricks). Local paths and ``file://``
URLs work only inside a ``file:<folder>`` entry of ``BACKLINE_OUTBOUND_ALLOW`` and never inside
Backline's own caches and checkouts. ``owner/name`` means a GitHub repository. Branch names,
commits and URLs are passed to git as separate arguments (never through a shell) and validated
first (nothing starting with ``-``).
"""

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.conf import settings

from portal import github, urlguard
from portal.errors import Invalid
from portal.executor import run_process
from portal.gitref import valid_branch
from portal.urlsecrets import redact_credentials, url_credentials


def workspace_root() -> Path:
    """Where the bare caches and git's HOME live (shared by pipelines and infra checkouts; the
    directory keeps the name it had when only pipelines cloned)."""
    return settings.WORKSPACE_ROOT / "pipelines"


SHA_RE = re.compile(r"^[0-9a-fA-F]{4,64}$")
GITHUB_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+$")
GIT_TIMEOUT = 600


class SourceError(Exception):
    pass


def valid_ref(ref: str) -> bool:
    """A branch or tag name git accepts (``git check-ref-format --branch``), never ``-...``."""
    return valid_branch(ref or "")


def valid_sha(sha: str) -> bool:
    return bool(SHA_RE.match(sha or ""))


def clone_url(repository_url: str) -> str:
    url = (repository_url or "").strip()
    if not url:
        raise SourceError("the service has no repository URL")
    if url.startswith("-"):
        raise SourceError(f"{url!r} is not a repository URL")
    if GITHUB_NAME_RE.match(url) and not Path(url).exists():
        return f"https://github.com/{url}.git"
    return url


HELPER_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*::")  # ext::sh -c ..., fd::3
SCP_RE = re.compile(r"^(?:([^@/:]+)@)?([^/:@]+):(?!//)(.*)$")  # git@host:org/repo.git
PROTOCOLS = (
    ["-c", "protocol.allow=never"]
    + [a for p in ("https", "http", "ssh") for a in ("-c", f"protocol.{p}.allow=always")]
    + ["-c", "http.followRedirects=false"]
)


@dataclass(frozen=True)
class Remote:
    """A repository URL the guard accepted, and the ``-c`` options (before git's subcommand)
    that hold git to it."""

    url: str
    config: tuple[str, ...]


def remote_for(repository_url: str) -> Remote:
    """The checked remote of ``repository_url``; raises ``SourceError`` saying why not."""
    url = clone_url(repository_url)
    try:
        return _remote(url)
    except urlguard.Refused as exc:
        raise SourceError(str(exc)) from None
    except urlguard.FetchError as exc:
        raise SourceError(f"{redact_url(url)}: {exc}") from None


def _remote(url: str, lookup: bool = True) -> Remote:
    if HELPER_RE.match(url):
        raise urlguard.Refused(f"{url!r}: git remote helpers (<transport>::<address>) are refused")
    if "://" not in url and (scp := SCP_RE.match(url)) and not url.startswith("/"):
        user, host, path = scp.groups()
        ssh = f"ssh://{user + '@' if user else ''}{host}/{path}"
        target = urlguard.check_url(ssh, use="git", lookup=lookup)
        return Remote(url, (*PROTOCOLS, *_ssh_pin(target)))
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme in ("", "file"):
        path = unquote(urlsplit(url).path) if scheme else url
        if not os.path.isabs(path):
            raise urlguard.Refused(f"{url!r}: a local repository must be an absolute path")
        if not urlguard.policy().local_allowed(path):
            raise urlguard.Refused(
                f"{url!r}: local repositories are read only inside the folders "
                "BACKLINE_OUTBOUND_ALLOW lists as file:<folder> (never Backline's own caches)"
            )
        return Remote(url, (*PROTOCOLS, "-c", "protocol.file.allow=always"))
    target = urlguard.check_url(url, use="git", lookup=lookup)
    config = list(PROTOCOLS)
    if target.scheme in ("http", "https") and target.address:
        address = f"[{target.address}]" if ":" in target.address else target.address
        config += ["-c", f"http.curloptResolve={target.host}:{target.port}:{address}"]
    if target.scheme == "ssh":
        config += _ssh_pin(target)
    return Remote(url, tuple(config))


def _ssh_pin(target: urlguard.Target) -> list[str]:
    """ssh connects to the address the guard checked (``HostName``), still verifying the host
    key under the name in the URL (``HostKeyAlias``), with no proxy command or jump host from
    any ssh config and no prompt."""
    if not target.address:  # a save-time check without DNS: nothing resolved to pin yet
        return []
    options = [
        f"HostName={target.address}",
        f"HostKeyAlias={target.host}",
        "ProxyCommand=none",
        "ProxyJump=none",
        "BatchMode=yes",
    ]
    return ["-c", "core.sshCommand=ssh " + " ".join(f"-o {o}" for o in options)]


def validate_remote(url: str, *, field: str = "repository_url", lookup: bool = True) -> None:
    """Save-time check of a repository URL: a 400 naming ``field`` when the guard refuses it
    (a host that does not resolve now is accepted; it is checked again at every clone).
    ``lookup=False``: no DNS (imports), the address is checked at the clone."""
    if not (url or "").strip():
        return
    try:
        _remote(clone_url(url), lookup)
    except SourceError as exc:
        raise Invalid(errors={field: str(exc)}) from None
    except urlguard.Refused as exc:
        raise Invalid(errors={field: str(exc)}) from None
    except urlguard.FetchError:
        return


def url_secrets(url: str) -> list[str]:
    """Credentials written into a repository URL (https://user:token@host/...)."""
    return url_credentials(url)


def redact_url(url: str) -> str:
    return redact_credentials(url)


def git_env() -> dict:
    home = workspace_root() / "home"
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_ASKPASS": "/bin/false",
    }


def _git_capture(args, cwd) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env=git_env(), capture_output=True, text=True, timeout=60
    )
    if proc.returncode != 0:
        raise SourceError(proc.stderr.strip() or f"git {args[0]} failed")
    return proc.stdout.strip()


class Checkout:
    """Fetch the repository into the cache and check out one commit in a fresh directory."""

    def __init__(self, run, *, on_output, should_cancel, on_heartbeat, heartbeat_every=5.0):
        self.run = run
        self.on_output = on_output
        self.should_cancel = should_cancel
        self.on_heartbeat = on_heartbeat
        self.heartbeat_every = heartbeat_every
        self.remote = remote_for(run.service.repository_url)
        self.url = self.remote.url
        key = hashlib.sha256(self.url.encode()).hexdigest()[:16]
        root = workspace_root()
        self.cache = root / "cache" / f"{run.service_id}-{key}.git"
        self.workdir = root / "runs" / str(run.pk)
        self.auth_env: dict[str, str] = {}
        self.auth_secrets: list[str] = []

    def _authenticate(self):
        """The GitHub token for a clone from GitHub's host, through git's config environment
        (portal.github.clone_env): never in the URL, the argv or the log."""
        if not github.configured() or not github.clone_env(self.url, "x"):
            return
        try:
            # a run started by a GitHub App delivery clones with that delivery's installation
            check = getattr(self.run, "github_check", None)
            token = github.GitHub(getattr(check, "installation_id", 0)).token()
        except github.GitHubError as exc:
            raise SourceError(f"GitHub credentials for the clone: {exc}") from None
        self.auth_env = github.clone_env(self.url, token)
        self.auth_secrets = [token, self.auth_env["GIT_CONFIG_VALUE_0"].split()[-1]]

    def _git(self, args, cwd):
        n = len(self.remote.config) if args[:1] == ["-c"] else 0  # the guard's -c options
        self.on_output(f"$ git {' '.join(redact_url(a) for a in args[n:])}\n")
        res = run_process(
            ["git", *args],
            cwd=cwd,
            env={**git_env(), **self.auth_env},
            timeout=GIT_TIMEOUT,
            secrets=url_secrets(self.url) + self.auth_secrets,
            on_output=self.on_output,
            should_cancel=self.should_cancel,
            on_heartbeat=self.on_heartbeat,
            heartbeat_every=self.heartbeat_every,
            grace=2.0,
        )
        if res.canceled:
            raise SourceError("canceled while fetching the source")
        if res.timed_out:
            raise SourceError(f"git {args[0]} timed out after {GIT_TIMEOUT}s")
        if res.exit_code != 0:
            raise SourceError(f"git {args[0]} failed with exit code {res.exit_code}")

    def _lock(self, lock):
        """Wait for the cache lock (another run may be fetching), heartbeating meanwhile."""
        last_beat = time.monotonic()
        waited = False
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if not waited:
                    self.on_output("waiting for another run to finish fetching this repository\n")
                    waited = True
                if self.should_cancel():
                    raise SourceError("canceled while waiting for the repository cache") from None
                if time.monotonic() - last_beat >= self.heartbeat_every:
                    last_beat = time.monotonic()
                    self.on_heartbeat()
                time.sleep(0.1)

    def prepare(self) -> tuple[Path, str]:
        run = self.run
        self._authenticate()
        self.cache.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.cache.with_suffix(".lock")
        with open(lock_path, "w") as lock:
            self._lock(lock)
            if not (self.cache / "HEAD").exists():
                shutil.rmtree(self.cache, ignore_errors=True)
                _git_capture(["init", "--bare", "-q", str(self.cache)], cwd=self.cache.parent)
            self._git(
                [
                    *self.remote.config,
                    "fetch",
                    "--force",
                    "--prune",
                    "--no-tags",
                    "--",
                    self.url,
                    "+refs/heads/*:refs/heads/*",
                    "+refs/tags/*:refs/tags/*",
                    "+refs/pull/*/head:refs/pull/*/head",  # pull requests from forks
                ],
                cwd=self.cache,
            )
            sha = self._resolve(run)
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        self.workdir.parent.mkdir(parents=True, exist_ok=True)
        self._git(
            ["clone", "--shared", "--no-checkout", "-q", str(self.cache), str(self.workdir)],
            cwd=self.workdir.parent,
        )
        self._git(["checkout", "-q", "--detach", sha], cwd=self.workdir)
        return self.workdir, sha

    def _resolve(self, run) -> str:
        if run.requested_commit:
            sha = run.requested_commit
            if not valid_sha(sha):
                raise SourceError(f"{sha!r} is not a commit id")
            try:
                return _git_capture(
                    ["rev-parse", "--verify", "--quiet", f"{sha}^{{commit}}"], self.cache
                )
            except SourceError:
                raise SourceError(
                    f"commit {sha} is not in the repository (was it pushed?)"
                ) from None
        ref = run.ref
        if not valid_ref(ref):
            raise SourceError(f"{ref!r} is not a valid branch or tag name")
        candidates = [ref] if ref.startswith("refs/") else [f"refs/heads/{ref}", f"refs/tags/{ref}"]
        for candidate in candidates:
            try:
                return _git_capture(
                    ["rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}"], self.cache
                )
            except SourceError:
                continue
        raise SourceError(f"branch or tag {ref!r} not found in {redact_url(self.url)}")

    def commit_info(self, sha) -> tuple[str, str]:
        try:
            out = _git_capture(["log", "-1", "--format=%an%x00%B", sha], self.workdir)
        except SourceError:
            return "", ""
        author, _, message = out.partition("\0")
        return author, message.strip()

    def cleanup(self):
        shutil.rmtree(self.workdir, ignore_errors=True)
