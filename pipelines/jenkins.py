"""Jenkins: a service's recent builds, and the ``jenkins:`` step that hands a stage to a job.

A service names its job with the annotation ``jenkins.io/job-full-name`` (as Backstage's
Jenkins plugin does), e.g. ``teams/playback/deploy``. Settings: ``JENKINS_URL``,
``JENKINS_USER`` and ``JENKINS_API_TOKEN`` (HTTP basic auth with an API token).

The step, in ``backline.yml``::

    - name: deploy
      jenkins: {job: teams/playback/deploy, parameters: {ENV: production}}
      timeout: 1h

follows Jenkins' REST protocol: a crumb from ``/crumbIssuer/api/json`` (none when CSRF
protection is off: 404), ``POST /job/…/buildWithParameters`` (``/build`` without parameters)
answering 201 with the queue item in ``Location``, ``/queue/item/<n>/api/json`` until it has
an ``executable`` (the build) or is ``cancelled``, then ``logText/progressiveText?start=<n>``
while ``X-More-Data: true`` (``X-Text-Size`` is the next start) into the run log, and the
build's ``result``: SUCCESS succeeds the step, anything else fails it. A cancel of the run or
the step's timeout stops the build (``POST …/stop``). Jenkins unreachable or answering an error
fails the step with what it said.
"""

import hashlib
from datetime import UTC, datetime
from urllib.parse import quote, urljoin

import requests
from django.conf import settings
from django.core.cache import cache

from pipelines.models import JenkinsBuild
from squads.models import Service

ANNOTATION = "jenkins.io/job-full-name"
TIMEOUT = 10.0
BUILD_TREE = (
    "builds[number,result,building,timestamp,duration,url,actions[lastBuiltRevision[SHA1]]]{0,%d}"
)


class JenkinsError(Exception):
    pass


def job_path(full_name: str) -> str:
    """``a/b`` → ``/job/a/job/b`` (each part URL-quoted)."""
    parts = [p for p in full_name.strip("/").split("/") if p]
    if not parts:
        raise JenkinsError("no Jenkins job named")
    return "".join(f"/job/{quote(p, safe='')}" for p in parts)


class Jenkins:
    def __init__(self, base_url: str, user: str = "", token: str = "", timeout: float = TIMEOUT):
        if not base_url:
            raise JenkinsError("Jenkins is not configured (set JENKINS_URL)")
        self.base = base_url.rstrip("/") + "/"
        self.timeout = timeout
        self.session = requests.Session()
        if user:
            self.session.auth = (user, token)
        self._crumb: dict | None = None

    def url(self, path: str) -> str:
        return urljoin(self.base, path.lstrip("/"))

    def request(self, method: str, url: str, **kw) -> requests.Response:
        url = url if url.startswith(("http://", "https://")) else self.url(url)
        try:
            resp = self.session.request(method, url, timeout=self.timeout, **kw)
        except requests.RequestException as exc:
            raise JenkinsError(f"Jenkins at {self.base} is unreachable: {exc}") from None
        if resp.status_code >= 400:
            text = resp.text.strip().splitlines()[0][:200] if resp.text.strip() else ""
            raise JenkinsError(
                f"Jenkins answered {resp.status_code} to {method} {url}"
                + (f": {text}" if text else "")
            )
        return resp

    def crumb(self) -> dict:
        """The crumb header for POSTs ({} when the crumb issuer is off)."""
        if self._crumb is None:
            try:
                data = self.request("GET", "crumbIssuer/api/json").json()
                self._crumb = {data["crumbRequestField"]: data["crumb"]}
            except JenkinsError as exc:
                if " 404 " not in str(exc):
                    raise
                self._crumb = {}
        return self._crumb

    def post(self, url: str, **kw) -> requests.Response:
        return self.request("POST", url, headers=self.crumb(), **kw)

    def trigger(self, job: str, parameters: dict) -> str:
        """Queue a build; returns the queue item's URL."""
        path = job_path(job) + ("/buildWithParameters" if parameters else "/build")
        resp = self.post(path, data=parameters or None)
        location = resp.headers.get("Location", "")
        if "/queue/item/" not in location:
            raise JenkinsError(f"Jenkins queued no build for {job} (no queue item in Location)")
        return location

    def build_of(self, queue_url: str) -> str | None:
        """The build's URL once the queue item left the queue; None while it waits."""
        item = self.request("GET", queue_url.rstrip("/") + "/api/json").json()
        if item.get("cancelled"):
            raise JenkinsError("the queued build was cancelled in Jenkins")
        executable = item.get("executable") or {}
        return executable.get("url") or None

    def progressive(self, build_url: str, start: int) -> tuple[str, int, bool]:
        """(text, next start, more to come) of the build's console from byte ``start``."""
        resp = self.request(
            "GET", build_url.rstrip("/") + "/logText/progressiveText", params={"start": start}
        )
        size = int(resp.headers.get("X-Text-Size") or start + len(resp.content))
        more = resp.headers.get("X-More-Data", "").lower() == "true"
        return resp.content.decode("utf-8", errors="replace"), size, more

    def build(self, build_url: str) -> dict:
        return self.request("GET", build_url.rstrip("/") + "/api/json").json()

    def stop(self, build_url: str) -> None:
        self.post(build_url.rstrip("/") + "/stop", allow_redirects=False)  # 302 to the build

    def recent_builds(self, job: str, limit: int = 10) -> list[dict]:
        data = self.request(
            "GET", job_path(job) + "/api/json", params={"tree": BUILD_TREE % limit}
        ).json()
        return [_build_row(b) for b in data.get("builds") or []]


def _build_row(b: dict) -> dict:
    sha = next(
        (
            (a.get("lastBuiltRevision") or {}).get("SHA1", "")
            for a in b.get("actions") or []
            if a and a.get("lastBuiltRevision")
        ),
        "",
    )
    status = "running" if b.get("building") else (b.get("result") or "unknown").lower()
    return {
        "number": b.get("number"),
        "status": status,
        "duration": (b.get("duration") or 0) / 1000.0,
        "started_at": b.get("timestamp"),
        "commit": sha,
        "url": b.get("url") or "",
    }


def _started(ms):
    return datetime.fromtimestamp(ms / 1000.0, tz=UTC) if ms else None


def sync_builds(limit: int = 20) -> dict:
    """Beat: save the recent builds of every service that names a Jenkins job; a job Jenkins
    cannot answer for is skipped (its error in the result), the others go on."""
    if not settings.JENKINS_URL:
        return {}
    jenkins, out = client(), {}
    for service in Service.objects.filter(annotations__has_key=ANNOTATION):
        job = service_job(service)
        try:
            rows = jenkins.recent_builds(job, limit)
        except JenkinsError as exc:
            out[service.slug] = str(exc)
            continue
        for b in rows:
            JenkinsBuild.objects.update_or_create(
                service=service,
                job=job,
                number=b["number"],
                defaults={
                    "status": b["status"],
                    "started_at": _started(b["started_at"]),
                    "duration": b["duration"],
                    "commit": b["commit"][:64],
                    "url": b["url"][:500],
                },
            )
        out[service.slug] = len(rows)
    return out


def client() -> Jenkins:
    return Jenkins(settings.JENKINS_URL, settings.JENKINS_USER, settings.JENKINS_API_TOKEN)


def service_job(service) -> str:
    return ((service.annotations or {}).get(ANNOTATION) or "").strip()


def service_builds(service) -> tuple[list[dict], str]:
    """(recent builds, error) of the service's Jenkins job, cached for 30 s."""
    job = service_job(service)
    where = f"{settings.JENKINS_URL} {job}".encode()
    key = f"jenkins:builds:{hashlib.sha256(where).hexdigest()}"
    rows = cache.get(key)
    if rows is not None:
        return rows, ""
    try:
        rows = client().recent_builds(job)
    except JenkinsError as exc:
        return [], str(exc)
    cache.set(key, rows, 30)
    return rows, ""
