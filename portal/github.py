"""A small GitHub REST client: token or GitHub App auth, rate limits, ETags, pagination.

Auth, from settings (``GITHUB_API_URL`` is api.github.com, a GitHub Enterprise ``/api/v3`` or
a local server):

- ``GITHUB_TOKEN``: sent as ``Authorization: Bearer`` (simple mode);
- ``GITHUB_APP_ID`` + ``GITHUB_APP_PRIVATE_KEY`` (a PEM path): an app JWT (RS256, ``iat`` 60 s in
  the past, ``exp`` 9 minutes ahead) is exchanged for an installation access token
  (``POST /app/installations/{id}/access_tokens``), kept in this process and minted again five
  minutes before it expires.

Rate limits: a 403/429 with ``Retry-After`` (secondary limit) or ``X-RateLimit-Remaining: 0``
waits when the reset is within ``GITHUB_RATE_LIMIT_MAX_WAIT`` seconds and tries again, else
raises :class:`RateLimited` saying when to try again. Conditional requests: GETs send
``If-None-Match`` with the ETag of the last answer (kept in the Django cache, so Redis), and a
304 (which costs no rate limit) returns the kept body. Lists follow ``Link: rel="next"``.
Git over HTTPS gets the token through git's config environment (``http.extraHeader``), never in
the URL, the argv or the log.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import requests
from django.conf import settings
from django.core.cache import cache

ACCEPT = "application/vnd.github+json"
API_VERSION = "2022-11-28"
TOKEN_MARGIN = 300.0  # mint a new installation token this long before it expires
MAX_TRIES = 3
ETAG_TTL = 7 * 86400


class GitHubError(Exception):
    """A GitHub call failed; ``status`` is GitHub's HTTP status (None: not reached)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class RateLimited(GitHubError):
    def __init__(self, message: str, status: int, retry_after: float):
        super().__init__(message, status)
        self.retry_after = retry_after


def configured() -> bool:
    return bool(
        settings.GITHUB_TOKEN or (settings.GITHUB_APP_ID and settings.GITHUB_APP_PRIVATE_KEY)
    )


def web_host() -> str:
    """The host git clones from: github.com for api.github.com, the Enterprise host otherwise."""
    host = urlsplit(settings.GITHUB_API_URL).netloc
    return "github.com" if host == "api.github.com" else host


def app_jwt(app_id: str, private_key_pem: bytes, now: float | None = None) -> str:
    """The app's JWT: RS256, issued 60 s ago (clock drift), expiring in 9 minutes (max 10)."""
    now = time.time() if now is None else now
    claims = {"iat": int(now) - 60, "exp": int(now) + 540, "iss": str(app_id)}
    return jwt.encode(claims, private_key_pem, algorithm="RS256")


@dataclass
class _Token:
    value: str
    expires_at: float


_TOKENS: dict[tuple[str, str, int], _Token] = {}
_TOKENS_LOCK = threading.Lock()


def _parse_time(value: str) -> float:
    return float(calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ")))


@dataclass
class Response:
    status: int
    data: Any
    headers: dict[str, str]
    cached: bool = False  # a 304 answered from the kept body


class GitHub:
    """One client per installation (``installation_id``; 0: ``GITHUB_APP_INSTALLATION_ID``)."""

    def __init__(self, installation_id: int = 0, *, session: requests.Session | None = None,
                 max_wait: float | None = None):  # fmt: skip
        """``max_wait``: the longest a rate limit is waited for (default
        ``GITHUB_RATE_LIMIT_MAX_WAIT``; 0 inside a webhook request, which GitHub times out)."""
        self.max_wait = settings.GITHUB_RATE_LIMIT_MAX_WAIT if max_wait is None else max_wait
        self.base = settings.GITHUB_API_URL
        self.installation_id = installation_id or settings.GITHUB_APP_INSTALLATION_ID
        self.session = session or requests.Session()
        self.requests_made = 0
        self.not_modified = 0

    # --- auth -----------------------------------------------------------------------------------
    def _private_key(self) -> bytes:
        path = Path(settings.GITHUB_APP_PRIVATE_KEY)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise GitHubError(
                f"GITHUB_APP_PRIVATE_KEY: cannot read {path}: {exc.strerror}"
            ) from None

    def app_headers(self) -> dict[str, str]:
        token = app_jwt(settings.GITHUB_APP_ID, self._private_key())
        return {"Authorization": f"Bearer {token}"}

    def _installation(self) -> int:
        if self.installation_id:
            return self.installation_id
        answer = self._send("GET", "/app/installations", headers=self.app_headers())
        if not answer.data:
            raise GitHubError(f"GitHub App {settings.GITHUB_APP_ID} has no installation")
        self.installation_id = int(answer.data[0]["id"])
        return self.installation_id

    def token(self) -> str:
        """The token calls and clones use (the installation token in app mode)."""
        if settings.GITHUB_TOKEN:
            return settings.GITHUB_TOKEN
        if not settings.GITHUB_APP_ID:
            raise GitHubError("GitHub is not configured: set GITHUB_TOKEN or GITHUB_APP_ID")
        installation = self._installation()
        key = (self.base, settings.GITHUB_APP_ID, installation)
        with _TOKENS_LOCK:
            kept = _TOKENS.get(key)
            if kept and kept.expires_at - TOKEN_MARGIN > time.time():
                return kept.value
        path = f"/app/installations/{installation}/access_tokens"
        answer = self._send("POST", path, headers=self.app_headers())
        token = _Token(answer.data["token"], _parse_time(answer.data["expires_at"]))
        with _TOKENS_LOCK:
            _TOKENS[key] = token
        return token.value

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}

    # --- calls ----------------------------------------------------------------------------------
    def _url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base + path

    def _send(self, method, path, *, headers, params=None, json=None) -> Response:
        url = self._url(path)
        all_headers = {"Accept": ACCEPT, "X-GitHub-Api-Version": API_VERSION, **headers}
        for attempt in range(MAX_TRIES):
            try:
                r = self.session.request(
                    method, url, headers=all_headers, params=params, json=json,
                    timeout=settings.GITHUB_TIMEOUT,
                )  # fmt: skip
            except requests.RequestException as exc:
                raise GitHubError(f"GitHub at {self.base} is unreachable: {exc}") from None
            self.requests_made += 1
            wait = _rate_limit_wait(r)
            if wait is None:
                break
            if wait > self.max_wait or attempt == MAX_TRIES - 1:
                raise RateLimited(
                    f"GitHub rate limit reached ({method} {urlsplit(url).path}: "
                    f"{_message(r)}); try again in {wait:.0f} s",
                    r.status_code,
                    wait,
                )
            time.sleep(wait)
        if r.status_code == 304:
            return Response(304, None, dict(r.headers))
        if r.status_code >= 400:
            raise GitHubError(
                f"GitHub answered {r.status_code} to {method} {urlsplit(url).path}: {_message(r)}",
                r.status_code,
            )
        data = r.json() if r.content else None
        return Response(r.status_code, data, dict(r.headers))

    def request(self, method: str, path: str, *, params=None, json=None) -> Response:
        return self._send(method, path, headers=self.headers(), params=params, json=json)

    def get(self, path: str, *, params=None, conditional: bool = True) -> Response:
        """A GET; with ``conditional``, sent with the last ETag and a 304 answers the kept body."""
        if not conditional:
            return self.request("GET", path, params=params)
        key = _etag_key(self._url(path), params, self.installation_id)
        kept = cache.get(key)
        headers = self.headers()
        if kept:
            headers["If-None-Match"] = kept["etag"]
        answer = self._send("GET", path, headers=headers, params=params)
        if answer.status == 304 and kept:
            self.not_modified += 1
            return Response(200, kept["data"], answer.headers, cached=True)
        etag = answer.headers.get("ETag")
        if etag:
            cache.set(key, {"etag": etag, "data": answer.data}, ETAG_TTL)
        return answer

    def pages(
        self, path: str, *, params=None, key: str | None = None
    ) -> Iterator[tuple[list, bool]]:
        """Each page of a list as ``(items, not_modified)``, following ``Link: <...>;
        rel="next"``; ``key`` names the list inside an object answer (``repositories``)."""
        url: str | None = path
        page_params: dict | None = {"per_page": 100, **(params or {})}
        while url:
            answer = self.get(url, params=page_params)
            items = answer.data.get(key, []) if key else answer.data
            yield list(items), answer.cached
            url = _next_link(answer.headers.get("Link", ""))
            page_params = None  # the next link carries them

    def paginate(self, path: str, *, params=None, key: str | None = None) -> Iterator[Any]:
        """Every item of a list (see :meth:`pages`)."""
        for items, _ in self.pages(path, params=params, key=key):
            yield from items

    # --- the calls Backline makes --------------------------------------------------------------
    def installation_repositories(self) -> Iterator[dict]:
        return self.paginate("/installation/repositories", key="repositories")

    def installation_repository_pages(self) -> Iterator[tuple[list, bool]]:
        """The installation's repositories (with a token, simple mode: the token's own,
        ``GET /user/repos``, which answers a bare list)."""
        if settings.GITHUB_TOKEN:
            return self.pages("/user/repos")
        return self.pages("/installation/repositories", key="repositories")

    def file_text(self, full_name: str, path: str, ref: str = "") -> tuple[str | None, Response]:
        """A file's text at ``ref`` (default branch), None when it does not exist."""
        params = {"ref": ref} if ref else None
        try:
            answer = self.get(f"/repos/{full_name}/contents/{path}", params=params)
        except GitHubError as exc:
            if exc.status == 404:
                return None, Response(404, None, {})
            raise
        content = answer.data.get("content", "") if isinstance(answer.data, dict) else ""
        return base64.b64decode(content).decode("utf-8", "replace"), answer

    def create_check_run(self, full_name: str, body: dict) -> dict:
        return self.request("POST", f"/repos/{full_name}/check-runs", json=body).data

    def update_check_run(self, full_name: str, check_id: int, body: dict) -> dict:
        path = f"/repos/{full_name}/check-runs/{check_id}"
        return self.request("PATCH", path, json=body).data


def _message(r: requests.Response) -> str:
    try:
        return str(r.json().get("message") or r.reason)[:300]
    except ValueError:
        return (r.text or r.reason or "")[:300]


def _rate_limit_wait(r: requests.Response) -> float | None:
    """Seconds to wait before trying again, or None when ``r`` is not a rate-limit answer."""
    if r.status_code not in (403, 429):
        return None
    retry_after = r.headers.get("Retry-After")
    if retry_after and retry_after.strip().isdigit():
        return float(retry_after)
    if r.headers.get("X-RateLimit-Remaining") == "0":
        reset = r.headers.get("X-RateLimit-Reset", "")
        return max(0.0, float(reset) - time.time()) if reset.isdigit() else 60.0
    return None


def _next_link(header: str) -> str | None:
    for part in header.split(","):
        segments = part.split(";")
        if len(segments) > 1 and any(s.strip() == 'rel="next"' for s in segments[1:]):
            return segments[0].strip().strip("<>")
    return None


def _etag_key(url: str, params, installation: int) -> str:
    raw = f"{installation}|{url}|{sorted((params or {}).items())}"
    return "github:etag:" + hashlib.sha256(raw.encode()).hexdigest()


def clone_env(url: str, token: str) -> dict[str, str]:
    """Environment for git that sends ``token`` to GitHub's host over HTTPS (``http.<url>
    .extraHeader``): nothing in the URL or the argv; empty when ``url`` is not on GitHub."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or parts.netloc != web_host() or not token:
        return {}
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"http.{parts.scheme}://{parts.netloc}/.extraHeader",
        "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
    }
