"""A local HTTP server speaking Jenkins' REST protocol for the calls Backline makes.

Shapes follow Jenkins' documented answers (``/api/json`` of a job, a queue item, a build;
the crumb issuer; ``logText/progressiveText`` with ``X-Text-Size`` / ``X-More-Data``):
basic auth with an API token, a crumb required on every POST (tied to the session cookie, as
Jenkins' default crumb issuer does), ``buildWithParameters`` answering 201 with the queue
item in ``Location``, a queue item that waits once before it has an ``executable``, and a
console that grows by one line per read until the build is over.
"""

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

CRUMB = "4f2a1c9be0d3"
USER, TOKEN = "backline", "11e7c0ffee0123456789abcdef"


class Job:
    def __init__(self, lines, result="SUCCESS"):
        self.lines, self.result, self.builds = lines, result, []


class Build:
    def __init__(self, job_path, number, job, params):
        self.job_path, self.number, self.job, self.params = job_path, number, job, params
        self.shown, self.aborted = 0, False
        self.timestamp = int(time.time() * 1000)

    @property
    def building(self):
        return not self.aborted and self.shown < len(self.job.lines)

    @property
    def console(self) -> bytes:
        text = "".join(line + "\n" for line in self.job.lines[: self.shown])
        return (text + ("Aborted by user\n" if self.aborted else "")).encode()

    @property
    def result(self):
        if self.building:
            return None
        return "ABORTED" if self.aborted else self.job.result


class FakeJenkins(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, jobs: dict[str, Job]):
        super().__init__(("127.0.0.1", 0), Handler)
        self.jobs, self.queue, self.lock = jobs, {}, threading.Lock()
        self.requests: list[tuple[str, str]] = []
        self.queue_polls: dict[int, int] = {}

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self


def _job_name(parts):
    """['job', 'a', 'job', 'b', rest...] → ('a/b', rest)."""
    names = []
    while len(parts) >= 2 and parts[0] == "job":
        names.append(parts[1])
        parts = parts[2:]
    return "/".join(names), parts


class Handler(BaseHTTPRequestHandler):
    server: FakeJenkins

    def log_message(self, *args):
        pass

    def _send(self, code, body=b"", ctype="application/json", headers=None):
        if isinstance(body, dict | list):
            body = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _authed(self):
        want = "Basic " + base64.b64encode(f"{USER}:{TOKEN}".encode()).decode()
        if self.headers.get("Authorization") != want:
            self._send(401, b"Unauthorized", "text/html")
            return False
        return True

    def do_GET(self):
        url = urlsplit(self.path)
        self.server.requests.append(("GET", url.path))
        if not self._authed():
            return
        parts = [p for p in url.path.split("/") if p]
        if parts == ["crumbIssuer", "api", "json"]:
            return self._send(
                200,
                {
                    "_class": "hudson.security.csrf.DefaultCrumbIssuer",
                    "crumb": CRUMB,
                    "crumbRequestField": "Jenkins-Crumb",
                },
                headers={"Set-Cookie": "JSESSIONID.fake=node0abc; Path=/; HttpOnly"},
            )
        if parts[:2] == ["queue", "item"]:
            return self._queue_item(int(parts[2]))
        name, rest = _job_name(parts)
        job = self.server.jobs.get(name)
        if job is None:
            return self._send(404, b"<html>Not Found</html>", "text/html")
        if rest == ["api", "json"]:
            builds = [self._build_json(b) for b in reversed(job.builds)]
            return self._send(200, {"_class": "hudson.model.FreeStyleProject", "builds": builds})
        build = job.builds[int(rest[0]) - 1] if rest and rest[0].isdigit() else None
        if build is None:
            return self._send(404, b"<html>Not Found</html>", "text/html")
        if rest[1:] == ["api", "json"]:
            return self._send(200, self._build_json(build))
        if rest[1:] == ["logText", "progressiveText"]:
            start = int(parse_qs(url.query).get("start", ["0"])[0])
            with self.server.lock:
                if build.building:
                    build.shown += 1
                data, more = build.console, build.building
            return self._send(
                200,
                data[start:],
                "text/plain;charset=utf-8",
                {"X-Text-Size": str(len(data)), **({"X-More-Data": "true"} if more else {})},
            )
        return self._send(404, b"<html>Not Found</html>", "text/html")

    def _build_json(self, b):
        return {
            "_class": "hudson.model.FreeStyleBuild",
            "number": b.number,
            "url": f"{self.server.url}/job/{'/job/'.join(b.job_path.split('/'))}/{b.number}/",
            "building": b.building,
            "result": b.result,
            "timestamp": b.timestamp,
            "duration": 0 if b.building else 1500,
            "actions": [
                {"_class": "hudson.model.ParametersAction"},
                {
                    "_class": "hudson.plugins.git.util.BuildData",
                    "lastBuiltRevision": {"SHA1": "e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0"},
                },
            ],
        }

    def _queue_item(self, n):
        with self.server.lock:
            build = self.server.queue.get(n)
            polls = self.server.queue_polls.get(n, 0)
            self.server.queue_polls[n] = polls + 1
        if build is None:
            return self._send(404, b"<html>Not Found</html>", "text/html")
        if polls == 0:  # waits once, as a build in the quiet period does
            return self._send(
                200,
                {
                    "_class": "hudson.model.Queue$WaitingItem",
                    "id": n,
                    "why": "In the quiet period. Expires in 0 ms",
                    "executable": None,
                },
            )
        return self._send(
            200,
            {
                "_class": "hudson.model.Queue$LeftItem",
                "id": n,
                "cancelled": False,
                "executable": {
                    "_class": "hudson.model.FreeStyleBuild",
                    "number": build.number,
                    "url": self._build_json(build)["url"],
                },
            },
        )

    def do_POST(self):
        url = urlsplit(self.path)
        self.server.requests.append(("POST", url.path))
        if not self._authed():
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        if self.headers.get("Jenkins-Crumb") != CRUMB or "JSESSIONID" not in (
            self.headers.get("Cookie") or ""
        ):
            return self._send(403, b"No valid crumb was included in the request", "text/html")
        name, rest = _job_name([p for p in url.path.split("/") if p])
        job = self.server.jobs.get(name)
        if job is None:
            return self._send(404, b"<html>Not Found</html>", "text/html")
        if rest in (["buildWithParameters"], ["build"]):
            params = {k: v[0] for k, v in parse_qs(body).items()}
            with self.server.lock:
                build = Build(name, len(job.builds) + 1, job, params)
                job.builds.append(build)
                n = 100 + len(self.server.queue)
                self.server.queue[n] = build
            return self._send(201, b"", headers={"Location": f"{self.server.url}/queue/item/{n}/"})
        if len(rest) == 2 and rest[1] == "stop":
            job.builds[int(rest[0]) - 1].aborted = True
            return self._send(302, b"", headers={"Location": "/"})
        return self._send(404, b"<html>Not Found</html>", "text/html")
