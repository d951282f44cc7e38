"""A local server speaking GitHub's REST protocol for the calls Backline makes, with real git
repositories on disk behind it (bare repositories under ``root/<owner>/<name>.git``, served to
git by ``git http-backend`` behind the installation token).

Shapes follow GitHub's documented answers (docs.github.com/rest): app JWT verified with the
app's public key (RS256, ``iss`` = app id, ``exp`` at most 10 minutes after ``iat``) →
``POST /app/installations/{id}/access_tokens`` ``{"token", "expires_at"}``;
``GET /installation/repositories`` ``{"total_count", "repositories"}`` with ``Link`` pages;
``GET /repos/{o}/{r}/actions/runs`` and ``/actions/workflows/{id or file}/runs``
(``{"total_count", "workflow_runs"}``, each run shaped like GitHub's "List workflow runs for a
repository" example, newest first, ``Link`` pages, ETag, 304); ``GET /repos/{o}/{r}/contents/{path}`` (base64 ``content``, ``sha``, ETag = blob sha, 304 on
``If-None-Match``); ``GET /repos/{o}/{r}/git/trees/{sha}``; ``POST``/``PATCH`` check runs;
``X-RateLimit-Limit/Remaining/Reset`` on every answer, 403 + ``Retry-After`` (secondary) or 403
with ``X-RateLimit-Remaining: 0`` (primary) when asked to.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import secrets
import shutil
import subprocess
import threading
import time
import zlib
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

PER_PAGE_MAX = 100


def make_key(path: Path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    return key.public_key()


def git(*args, cwd=None, check=True) -> str:
    env = {
        "GIT_AUTHOR_NAME": "Dev",
        "GIT_AUTHOR_EMAIL": "dev@example.com",
        "GIT_COMMITTER_NAME": "Dev",
        "GIT_COMMITTER_EMAIL": "dev@example.com",
        "HOME": "/tmp",
        "PATH": "/usr/bin:/bin:/usr/local/bin",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode:
        raise RuntimeError(f"git {args}: {proc.stderr}")
    return proc.stdout.strip()


def _write_object(gitdir: Path, kind: str, data: bytes) -> str:
    raw = f"{kind} {len(data)}".encode() + b"\0" + data
    sha = hashlib.sha1(raw).hexdigest()
    path = gitdir / "objects" / sha[:2] / sha[2:]
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(zlib.compress(raw))
    return sha


class FakeGitHub:
    def __init__(self, root: Path, *, app_id="4242", installation_id=77, token=""):
        self.root = root
        self.bare = root / "bare"
        self.work = root / "work"
        self.bare.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        self.key_path = root / "app.pem"
        self.public_key = make_key(self.key_path)
        self.app_id = app_id
        self.installation_id = installation_id
        self.simple_token = token
        self.tokens: dict[str, float] = {}
        self.repos: dict[str, dict] = {}
        self.check_runs: dict[int, dict] = {}
        self.workflows: dict[str, dict[str, dict]] = {}  # repo → file → workflow
        self.workflow_runs: dict[str, list[dict]] = {}  # repo → runs, newest first
        self._ids = itertools.count(1000)
        self.lock = threading.Lock()
        self.log: list[tuple[str, str, int]] = []  # (method, path, status)
        self.rate_remaining = 5000
        self.secondary_limit: int | None = None  # Retry-After seconds to answer once
        self.primary_exhausted = False
        self.forbidden_repos: set[str] = set()
        self.failing_checks = 0  # answer this many check-run calls with 502
        self.secondary_limit_after: int | None = None  # then 403 Retry-After 120 from then on
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    # --- repositories ---------------------------------------------------------------------------
    def add_repo(self, full_name: str, files: dict[str, str], *, private=True, branch="main"):
        """A real repository: a work tree under work/ committed with ``files``, pushed to the
        bare repository the server reads and serves."""
        work = self.work / full_name
        bare = self.bare / f"{full_name}.git"
        work.mkdir(parents=True, exist_ok=True)
        bare.parent.mkdir(parents=True, exist_ok=True)
        git("init", "-q", "--bare", "-b", branch, str(bare))
        git("init", "-q", "-b", branch, str(work))
        git("remote", "add", "origin", str(bare), cwd=work)
        self.repos[full_name] = {
            "id": next(self._ids),
            "full_name": full_name,
            "private": private,
            "default_branch": branch,
            "pushed_at": "",
        }
        self.commit(full_name, files, message="initial")
        return work

    def add_repo_fast(self, full_name: str, files: dict[str, str], *, branch="main"):
        """A real bare repository with one commit of flat ``files``, its objects written
        directly (zlib loose objects, as git writes them): for hundreds of repositories."""
        bare = self.bare / f"{full_name}.git"
        if not hasattr(self, "_template"):
            self._template = self.root / "template.git"
            git("init", "-q", "--bare", "-b", branch, str(self._template))
        shutil.copytree(self._template, bare)
        entries = b""
        for name in sorted(files):
            sha = _write_object(bare, "blob", files[name].encode())
            entries += f"100644 {name}\0".encode() + bytes.fromhex(sha)
        tree = _write_object(bare, "tree", entries)
        who = "Dev <dev@example.com> 1700000000 +0000"
        commit = _write_object(
            bare, "commit", f"tree {tree}\nauthor {who}\ncommitter {who}\n\ninitial\n".encode()
        )
        (bare / "refs" / "heads" / branch).write_text(commit + "\n")
        self.repos[full_name] = {
            "id": next(self._ids),
            "full_name": full_name,
            "private": True,
            "default_branch": branch,
            "pushed_at": "2023-11-14T22:13:20Z",
        }
        return commit

    def commit(self, full_name, files: dict[str, str | None], *, message="change", branch=None):
        """Write (None: delete) files, commit, push; returns the new commit sha."""
        work = self.work / full_name
        branch = branch or self.repos[full_name]["default_branch"]
        if git("rev-parse", "--abbrev-ref", "HEAD", cwd=work, check=False) != branch:
            git("checkout", "-q", "-B", branch, cwd=work)
        for name, text in files.items():
            path = work / name
            if text is None:
                path.unlink(missing_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        git("add", "-A", cwd=work)
        git("commit", "-q", "--allow-empty", "-m", message, cwd=work)
        git("push", "-q", "--force", "origin", f"HEAD:refs/heads/{branch}", cwd=work)
        self.repos[full_name]["pushed_at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return git("rev-parse", "HEAD", cwd=work)

    def clone_url(self, full_name: str) -> str:
        return f"{self.url}/{full_name}.git"

    def repo_json(self, full_name: str) -> dict:
        r = self.repos[full_name]
        owner, name = full_name.split("/")
        return {
            "id": r["id"],
            "node_id": f"R_{r['id']}",
            "name": name,
            "full_name": full_name,
            "private": r["private"],
            "owner": {"login": owner, "type": "Organization"},
            "html_url": f"{self.url}/{full_name}",
            "clone_url": self.clone_url(full_name),
            "default_branch": r["default_branch"],
            "pushed_at": r.get("pushed_at", ""),
            "archived": False,
        }

    def requests_to(self, pattern: str, status: int | None = None) -> int:
        rx = re.compile(pattern)
        with self.lock:
            return sum(
                1
                for m, p, s in self.log
                if rx.search(f"{m} {p}") and (status is None or status == s)
            )

    def check_history(self, check_id: int) -> list[str]:
        return [h["status"] for h in self.check_runs[check_id]["history"]]

    # --- GitHub Actions ---------------------------------------------------------------------
    def add_workflow_run(self, full_name, workflow="ci.yml", *, name="CI", status="completed",
                         conclusion="success", branch="main", sha="", event="push",
                         started: datetime | None = None, seconds=90.0, title="change"):  # fmt: skip
        """A workflow run of ``full_name`` (the newest), shaped as GitHub answers it."""
        owner, repo = full_name.split("/")
        flows = self.workflows.setdefault(full_name, {})
        flow = flows.setdefault(workflow, {"id": next(self._ids), "name": name, "file": workflow})
        runs = self.workflow_runs.setdefault(full_name, [])
        started = started or datetime.now(UTC) - timedelta(seconds=seconds)
        stamp = "%Y-%m-%dT%H:%M:%SZ"
        run_id = next(self._ids) + 30_000_000
        sha = sha or hashlib.sha1(f"{full_name}{run_id}".encode()).hexdigest()
        api = f"{self.url}/repos/{full_name}/actions/runs/{run_id}"
        actor = {"login": "octocat", "id": 1, "type": "User"}
        run = {
            "id": run_id,
            "name": name,
            "node_id": f"WFR_{run_id}",
            "check_suite_id": run_id + 1,
            "check_suite_node_id": f"CS_{run_id + 1}",
            "head_branch": branch,
            "head_sha": sha,
            "path": f".github/workflows/{workflow}",
            "display_title": title,
            "run_number": sum(1 for r in runs if r["workflow_id"] == flow["id"]) + 1,
            "event": event,
            "status": status,
            "conclusion": conclusion if status == "completed" else None,
            "workflow_id": flow["id"],
            "url": api,
            "html_url": f"{self.url}/{full_name}/actions/runs/{run_id}",
            "pull_requests": [],
            "created_at": started.strftime(stamp),
            "updated_at": (started + timedelta(seconds=seconds)).strftime(stamp),
            "actor": actor,
            "run_attempt": 1,
            "referenced_workflows": [],
            "run_started_at": started.strftime(stamp),
            "triggering_actor": actor,
            "jobs_url": f"{api}/jobs",
            "logs_url": f"{api}/logs",
            "check_suite_url": f"{self.url}/repos/{full_name}/check-suites/{run_id + 1}",
            "artifacts_url": f"{api}/artifacts",
            "cancel_url": f"{api}/cancel",
            "rerun_url": f"{api}/rerun",
            "previous_attempt_url": None,
            "workflow_url": f"{self.url}/repos/{full_name}/actions/workflows/{flow['id']}",
            "head_commit": {
                "id": sha,
                "tree_id": hashlib.sha1(sha.encode()).hexdigest(),
                "message": title,
                "timestamp": started.strftime(stamp),
                "author": {"name": "Dev", "email": "dev@example.com"},
                "committer": {"name": "Dev", "email": "dev@example.com"},
            },
            "repository": {"id": 1, "name": repo, "full_name": full_name, "private": True},
            "head_repository": {"id": 1, "name": repo, "full_name": full_name},
        }
        runs.insert(0, run)
        return run

    def _actions_runs(self, h, full_name, rest, query):
        runs = self.workflow_runs.get(full_name, [])
        m = re.fullmatch(r"actions/workflows/([^/]+)/runs", rest)
        base = f"{self.url}/repos/{full_name}/{rest}"
        if m:
            flows = self.workflows.get(full_name, {})
            flow = next(
                (f for f in flows.values() if m.group(1) in (f["file"], str(f["id"]))), None
            )
            if flow is None:
                return self._send(h, 404, {"message": "Not Found"})
            runs = [r for r in runs if r["workflow_id"] == flow["id"]]
        for key in ("branch", "event", "status"):
            if key in query:
                field = {"branch": "head_branch"}.get(key, key)
                runs = [r for r in runs if query[key] in (r[field], r.get("conclusion"))]
        per_page = min(int(query.get("per_page", 30)), PER_PAGE_MAX)
        page = int(query.get("page", 1))
        last = max(1, -(-len(runs) // per_page))
        links = []
        if page < last:
            links.append(f'<{base}?per_page={per_page}&page={page + 1}>; rel="next"')
            links.append(f'<{base}?per_page={per_page}&page={last}>; rel="last"')
        body = {
            "total_count": len(runs),
            "workflow_runs": runs[(page - 1) * per_page : page * per_page],
        }
        etag = 'W/"' + hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest() + '"'
        headers = {"ETag": etag, **({"Link": ", ".join(links)} if links else {})}
        if h.headers.get("If-None-Match") == etag:
            return self._send(h, 304, None, headers)
        self._send(h, 200, body, headers)

    # --- the handler ----------------------------------------------------------------------------
    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                hub._dispatch(self, "GET")

            def do_POST(self):
                hub._dispatch(self, "POST")

            def do_PATCH(self):
                hub._dispatch(self, "PATCH")

        return Handler

    def _send(self, h, status, data=None, headers=None):
        body = b"" if data is None else json.dumps(data).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json; charset=utf-8")
        h.send_header("Content-Length", str(len(body)))
        h.send_header("X-RateLimit-Limit", "5000")
        h.send_header("X-RateLimit-Remaining", str(self.rate_remaining))
        h.send_header("X-RateLimit-Reset", str(int(time.time()) + 3600))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        with self.lock:  # before the answer leaves: a client may count right after it
            self.log.append((h.command, urlsplit(h.path).path, status))
        h.end_headers()
        h.wfile.write(body)

    def _body(self, h) -> bytes:
        length = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(length) if length else b""

    def _dispatch(self, h, method):
        path = urlsplit(h.path).path
        if ".git/" in path:
            return self._git_http(h, method, path)
        if path.startswith("/app/"):
            return self._app(h, method, path)
        token = (h.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        if not (token in self.tokens and self.tokens[token] > time.time()) and not (
            self.simple_token and token == self.simple_token
        ):
            return self._send(h, 401, {"message": "Bad credentials"})
        if self.secondary_limit_after is not None:
            if self.secondary_limit_after <= 0:
                msg = "You have exceeded a secondary rate limit."
                return self._send(h, 403, {"message": msg}, {"Retry-After": "120"})
            self.secondary_limit_after -= 1
        if self.secondary_limit is not None:
            wait, self.secondary_limit = self.secondary_limit, None
            msg = "You have exceeded a secondary rate limit."
            return self._send(h, 403, {"message": msg}, {"Retry-After": str(wait)})
        if self.primary_exhausted:
            self.rate_remaining = 0
            return self._send(h, 403, {"message": "API rate limit exceeded for installation."})
        self.rate_remaining = max(0, self.rate_remaining - 1)
        self._api(h, method, path)

    def _app(self, h, method, path):
        auth = (h.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        try:
            claims = jwt.decode(auth, self.public_key, algorithms=["RS256"], leeway=0)
        except jwt.PyJWTError as exc:
            return self._send(h, 401, {"message": f"A JSON web token could not be decoded: {exc}"})
        if str(claims.get("iss")) != self.app_id or claims["exp"] - claims["iat"] > 600:
            return self._send(
                h, 401, {"message": "'Expiration time' claim is too far in the future"}
            )
        if method == "GET" and path == "/app/installations":
            return self._send(h, 200, [{"id": self.installation_id, "app_id": int(self.app_id)}])
        m = re.fullmatch(r"/app/installations/(\d+)/access_tokens", path)
        if method == "POST" and m:
            if int(m.group(1)) != self.installation_id:
                return self._send(h, 404, {"message": "Not Found"})
            token = "ghs_" + secrets.token_hex(16)
            expires = datetime.now(UTC) + timedelta(hours=1)
            self.tokens[token] = expires.timestamp()
            body = {"token": token, "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}
            return self._send(h, 201, {**body, "permissions": {"checks": "write"}})
        self._send(h, 404, {"message": "Not Found"})

    def _api(self, h, method, path):
        query = {k: v[0] for k, v in parse_qs(urlsplit(h.path).query).items()}
        if method == "GET" and path in ("/installation/repositories", "/user/repos"):
            return self._repositories(h, query, bare_list=path == "/user/repos")
        m = re.fullmatch(
            r"/repos/([^/]+/[^/]+)/(contents/.+|git/trees/[^/]+|check-runs(?:/\d+)?"
            r"|actions/runs|actions/workflows/[^/]+/runs)",
            path,
        )
        if not m or m.group(1) not in self.repos:
            return self._send(h, 404, {"message": "Not Found"})
        full_name, rest = m.group(1), m.group(2)
        if full_name in self.forbidden_repos:
            return self._send(h, 403, {"message": "Resource not accessible by integration"})
        if method == "GET" and rest.startswith("contents/"):
            return self._contents(h, full_name, rest.removeprefix("contents/"), query)
        if method == "GET" and rest.startswith("git/trees/"):
            return self._tree(h, full_name, rest.removeprefix("git/trees/"))
        if rest.startswith("check-runs"):
            return self._check_run(h, method, full_name, rest)
        if method == "GET" and rest.startswith("actions/"):
            return self._actions_runs(h, full_name, rest, query)
        self._send(h, 404, {"message": "Not Found"})

    def _repositories(self, h, query, bare_list=False):
        per_page = min(int(query.get("per_page", 30)), PER_PAGE_MAX)
        page = int(query.get("page", 1))
        names = sorted(self.repos)
        chunk = names[(page - 1) * per_page : page * per_page]
        last = max(1, -(-len(names) // per_page))
        links = []
        base = f"{self.url}/installation/repositories?per_page={per_page}"
        if page < last:
            links.append(f'<{base}&page={page + 1}>; rel="next"')
            links.append(f'<{base}&page={last}>; rel="last"')
        body: dict | list = {
            "total_count": len(names),
            "repositories": [self.repo_json(n) for n in chunk],
        }
        if bare_list:
            body = body["repositories"]
            base = base.replace("/installation/repositories", "/user/repos")
            links = [link.replace("/installation/repositories", "/user/repos") for link in links]
        etag = '"' + hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest() + '"'
        if h.headers.get("If-None-Match") == etag:
            return self._send(
                h, 304, None, {"ETag": etag, **({"Link": ", ".join(links)} if links else {})}
            )
        self._send(h, 200, body, {"ETag": etag, **({"Link": ", ".join(links)} if links else {})})

    def _bare(self, full_name):
        return str(self.bare / f"{full_name}.git")

    def _contents(self, h, full_name, file_path, query):
        ref = query.get("ref") or self.repos[full_name]["default_branch"]
        sha = git(
            "--git-dir", self._bare(full_name), "rev-parse", f"{ref}:{file_path}", check=False
        )
        if not re.fullmatch(r"[0-9a-f]{40}", sha):
            return self._send(h, 404, {"message": "Not Found"})
        etag = f'"{sha}"'
        if h.headers.get("If-None-Match") == etag:
            return self._send(h, 304, None, {"ETag": etag})
        raw = subprocess.run(
            ["git", "--git-dir", self._bare(full_name), "cat-file", "blob", sha],
            capture_output=True,
        ).stdout
        body = {
            "type": "file",
            "encoding": "base64",
            "size": len(raw),
            "name": file_path.rsplit("/", 1)[-1],
            "path": file_path,
            "sha": sha,
            "content": base64.encodebytes(raw).decode(),
        }
        self._send(h, 200, body, {"ETag": etag})

    def _tree(self, h, full_name, ref):
        out = git(
            "--git-dir", self._bare(full_name), "ls-tree", "-r", "--full-tree", ref, check=False
        )
        tree = []
        for line in out.splitlines():
            meta, name = line.split("\t", 1)
            mode, kind, sha = meta.split()
            tree.append({"path": name, "mode": mode, "type": kind, "sha": sha})
        sha = git("--git-dir", self._bare(full_name), "rev-parse", f"{ref}^{{tree}}", check=False)
        self._send(h, 200, {"sha": sha, "tree": tree, "truncated": False})

    def _check_run(self, h, method, full_name, rest):
        data = json.loads(self._body(h) or b"{}")
        with self.lock:
            failing, self.failing_checks = self.failing_checks > 0, max(0, self.failing_checks - 1)
        if failing:
            return self._send(h, 502, {"message": "Server Error"})
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with self.lock:
            if method == "POST" and rest == "check-runs":
                if not data.get("name") or not data.get("head_sha"):
                    return self._send(h, 422, {"message": "Invalid request: name, head_sha"})
                cid = next(self._ids)
                run = {"id": cid, "repo": full_name, "status": "queued", "history": [], **data}
                self.check_runs[cid] = run
            elif method == "PATCH" and rest.split("/")[-1].isdigit():
                cid = int(rest.split("/")[-1])
                if cid not in self.check_runs:
                    return self._send(h, 404, {"message": "Not Found"})
                run = self.check_runs[cid]
                run.update(data)
            else:
                return self._send(h, 404, {"message": "Not Found"})
            if data.get("conclusion") and "status" not in data:
                run["status"] = "completed"
            run["history"].append(
                {"status": run["status"], "conclusion": run.get("conclusion"), "at": now}
            )
            answer = {k: v for k, v in run.items() if k != "history"}
        self._send(h, 201 if method == "POST" else 200, answer)

    def _git_http(self, h, method, path):
        auth = h.headers.get("Authorization") or ""
        ok = False
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            ok = password in self.tokens or (self.simple_token and password == self.simple_token)
        if not ok:
            h.send_response(401)
            h.send_header("WWW-Authenticate", 'Basic realm="GitHub"')
            h.send_header("Content-Length", "0")
            h.end_headers()
            with self.lock:
                self.log.append((method, path, 401))
            return
        self._cgi(h, method, path)

    def _cgi(self, h, method, path):
        body = self._body(h)
        env = {
            "GIT_PROJECT_ROOT": str(self.bare),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path,
            "QUERY_STRING": urlsplit(h.path).query,
            "REQUEST_METHOD": method,
            "CONTENT_TYPE": h.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "PATH": "/usr/bin:/bin",
            "HTTP_GIT_PROTOCOL": h.headers.get("Git-Protocol", ""),
        }
        out = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True
        ).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.decode().split("\r\n"):
            k, _, v = line.partition(":")
            if k.lower() == "status":
                status = int(v.split()[0])
            elif k:
                headers.append((k, v.strip()))
        h.send_response(status)
        for k, v in headers:
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(payload)))
        with self.lock:
            self.log.append((method, path, status))
        h.end_headers()
        h.wfile.write(payload)
