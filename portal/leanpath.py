"""The lean read path: the hottest API reads answered before Django's handler runs.

``portal.wsgi`` wraps Django's WSGI application in :class:`LeanApp`. A GET under ``/api/``
whose path matches a route an app registered (``portal.registry.lean_route``, from its
``AppConfig.ready()``) is offered to that route's handler, which answers with ONE SQL round
trip (:func:`authorized_answer`: the bearer token checked and the answer, already serialised by
PostgreSQL, in the same statement) while the rate limit's one Redis round trip runs (sent
before the SQL, its reply read after: ``portal.counters.PendingCount``); no middleware
chain, no DRF request, no ORM, no JSON parse or encode of the stored documents.

It answers only what it answers exactly as the DRF view would (``tests/catalog/test_lean_reads.py``
compares the two over a matrix of requests); everything else goes to Django unchanged:
methods other than GET, session or cookie requests, no or a malformed ``Authorization``
header, an unknown, revoked or expired token, a throttled token (Django counts it again and
answers the same 429), an ``Accept`` other than JSON, a parameter or value the handler does not
know, a disallowed host, an error answer (404, 400), a database error. ``LEAN_READS = False``
(setting ``BACKLINE_LEAN_READS``) sends everything to Django.

What the bypassed layers do for these requests is kept: the token checks and last-used
bookkeeping of ``portal.authentication.BearerTokenAuthentication`` (same SQL conditions), the
rate limit of ``portal.throttling`` (same counter), the security headers (Django's
``SecurityMiddleware`` and ``XFrameOptionsMiddleware`` and ``portal.middleware``'s own
``process_response``, run once per ``Allow`` header and scheme: ``_response_headers``), DRF's ``Allow`` and ``Vary``, host validation and the request metrics
(``RequestMetricsMiddleware``'s histogram, same labels). A persistent connection found broken is
closed and the statement retried once on a new one (what ``CONN_HEALTH_CHECKS`` would do, without
its ``SELECT 1`` on every request); ``CONN_MAX_AGE`` is honoured.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.wsgi import WSGIRequest
from django.core.signals import setting_changed
from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django.dispatch import receiver
from django.http import HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import resolve
from django.utils import timezone

from portal import metrics
from portal.counters import PendingCount
from portal.middleware import SecurityHeadersMiddleware
from portal.models import ApiToken, hash_token
from portal.registry import LeanRoute
from portal.throttling import COUNTED, WINDOW, rate_key, within_limit

log = logging.getLogger(__name__)

JSON_ACCEPT = frozenset({"", "*/*", "application/json"})
MAX_PARAMS = 20
TOKEN_KEY = "backline.lean_token"  # (pk, rate limit) of the token authorized_answer checked
HASH_KEY = "backline.lean_key_hash"  # the hash of the request's bearer token


class Declined(Exception):
    """The lean path does not answer this request: Django does."""


def _noop(request):  # the middlewares below are only asked to process a response
    return None


_security = SecurityMiddleware(_noop)
_frames = XFrameOptionsMiddleware(_noop)
_headers = SecurityHeadersMiddleware(_noop)


class LeanApp:
    """The WSGI application gunicorn serves: the lean routes first, then Django."""

    def __init__(self, django_app, routes: Sequence[LeanRoute]):
        self.django_app = django_app
        self.routes = routes

    def __call__(self, environ, start_response):
        if (
            environ.get("REQUEST_METHOD") == "GET"
            and environ.get("PATH_INFO", "").startswith("/api/")
            and settings.LEAN_READS
        ):
            for route in self.routes:
                match = route.pattern.match(environ["PATH_INFO"])
                if match:
                    answered = self._try(route, match, environ, start_response)
                    if answered is not None:
                        return answered
                    break
        return self.django_app(environ, start_response)

    def _try(self, route, match, environ, start_response):
        start = time.perf_counter()
        pending = None
        try:
            request = _plain_request(environ)
            key_hash = request.META[HASH_KEY] = hash_token(bearer_key(request))
            pending = _send_count(key_hash)  # Redis counts while PostgreSQL answers
            body = route.handler(request, match)
        except Declined:
            body = None
        except Exception:  # noqa: BLE001 - a lean-path bug must degrade to the normal path
            log.exception("lean read path failed; Django answers %s", environ.get("PATH_INFO"))
            body = None
        body = _settle(pending, body, environ) if HASH_KEY in environ else None
        if body is None:
            metrics.LEAN_READS.labels(outcome="django").inc()
            return None
        headers = _response_headers(request, body, route.allow)
        if not route.view_name:
            route.view_name = resolve(request.path_info).view_name
        _latency(route.view_name).observe(time.perf_counter() - start)
        _LEAN.inc()
        start_response("200 OK", headers)
        return [body]


_LEAN = metrics.LEAN_READS.labels(outcome="lean")
_LATENCY: dict[str, Any] = {}  # view name -> its histogram of 2xx GETs


def _latency(view_name: str):
    found = _LATENCY.get(view_name)
    if found is None:
        found = _LATENCY[view_name] = metrics.HTTP_LATENCY.labels(
            view=view_name, method="GET", status="2xx"
        )
    return found


def _send_count(key_hash: str) -> PendingCount | None:
    """The request counted in its token's window, the reply not yet read; None when the
    counter store is down (never refuse)."""
    try:
        return PendingCount(rate_key(key_hash, time.time()), WINDOW)
    except Exception:  # noqa: BLE001 - never refuse service because the counter store is down
        return None


def _settle(pending: PendingCount | None, body: bytes | None, environ) -> bytes | None:
    """``body`` if the token ``authorized_answer`` found valid is within its rate limit; else
    None: Django answers, and its throttle reads the count made here (a 429 for a throttled
    token, one count for a request left to Django). A request whose token was not found
    valid here is taken back out of the count (Django counts it if the token is valid)."""
    count = None
    if pending is not None:
        try:
            count = pending.result()
        except Exception:  # noqa: BLE001 - never refuse service because the counter store is down
            pending = None
    pk, limit = environ.get(TOKEN_KEY, (None, 0))  # set by authorized_answer
    if pk is None:
        if pending is not None:
            _undo(pending)
        return None
    if body is not None and within_limit(count, limit):
        return body
    environ[COUNTED] = (environ[HASH_KEY], count)
    return None


def _undo(pending: PendingCount) -> None:
    try:
        pending.undo()
    except Exception:  # noqa: BLE001, S110 - the counter store is down: the window expires
        pass


def _plain_request(environ) -> WSGIRequest:
    """The request, if it is one the lean path may answer (else ``Declined``)."""
    if (
        environ.get("HTTP_COOKIE")
        or environ.get("CONTENT_LENGTH") not in (None, "", "0")
        or environ.get("HTTP_ACCEPT", "").strip() not in JSON_ACCEPT
        or not environ.get("HTTP_AUTHORIZATION")
        or settings.DISALLOWED_USER_AGENTS
    ):
        raise Declined
    request = WSGIRequest(environ)
    try:
        request.get_host()  # CommonMiddleware's check: a disallowed host gets Django's 400
    except DisallowedHost:
        raise Declined from None
    if _security.process_request(request) is not None:  # SECURE_SSL_REDIRECT
        raise Declined
    if len(request.GET) > MAX_PARAMS or "format" in request.GET:
        raise Declined
    return request


def _response(request, body: bytes, allow: str) -> HttpResponse:
    response = HttpResponse(body, content_type="application/json")
    response["Allow"] = allow
    response["Vary"] = "Accept"
    response["Content-Length"] = str(len(body))
    for middleware in (_frames, _headers, _security):  # inner to outer, as in MIDDLEWARE
        response = middleware.process_response(request, response)
    return response


# (Allow, secure request) -> the headers of a lean answer but its length: what ``_response``
# (the middlewares' own process_response) gives for them, computed once; a lean answer's
# headers depend on nothing else (its path is under /api/, it sets no header of its own)
_HEADERS: dict[tuple[str, bool], list[tuple[str, str]]] = {}


def _response_headers(request, body: bytes, allow: str) -> list[tuple[str, str]]:
    key = (allow, request.is_secure())
    headers = _HEADERS.get(key)
    if headers is None:
        headers = _HEADERS[key] = list(_response(request, b"", allow).items())
    length = str(len(body))
    return [(k, length if k == "Content-Length" else v) for k, v in headers]


@receiver(setting_changed)
def _forget_headers(**kwargs) -> None:
    _HEADERS.clear()


def param(request, name: str, strip: bool = True) -> str | None:
    """The single value of ``name`` (None if absent), stripped as a form ``CharField`` strips
    it; ``Declined`` for a repeated parameter or a NUL character (the filters answer 400)."""
    values = request.GET.getlist(name)
    if not values:
        return None
    if len(values) > 1 or "\x00" in values[0]:
        raise Declined
    return values[0].strip() if strip else values[0]


# --- the token check and the answer, in one statement ---------------------------------------
def _token_sql() -> str:
    table = ApiToken._meta.db_table
    return f"""
WITH tok AS (
  SELECT id, rate_limit_per_minute AS lim, last_used_at,
         revoked_at IS NULL AND (expires_at IS NULL OR expires_at > %(now)s) AS ok
  FROM {table} WHERE key_hash = %(key_hash)s
), touch AS (
  UPDATE {table} SET last_used_at = %(now)s
  WHERE id = (SELECT id FROM tok WHERE ok AND (last_used_at IS NULL
                                               OR last_used_at < %(now)s - interval '60 seconds'))
  RETURNING id
){{cte}}
SELECT tok.id, tok.ok, tok.lim{{columns}} FROM tok"""


@functools.lru_cache(maxsize=1024)
def _statement(columns: tuple[str, ...], cte: str) -> str:
    """The text of ``authorized_answer``'s statement (one per route shape)."""
    return (
        _token_sql()
        .replace("{columns}", "".join(f", CASE WHEN tok.ok THEN ({c}) END" for c in columns))
        .replace("{cte}", f", {cte}" if cte else "")
    )


def bearer_key(request) -> str:
    """The bearer token of the ``Authorization`` header, as ``BearerTokenAuthentication``
    splits it; ``Declined`` for anything else (DRF answers it)."""
    header = request.META["HTTP_AUTHORIZATION"].encode("iso-8859-1", errors="replace")
    parts = header.decode(errors="replace").split()
    if len(parts) != 2 or parts[0].lower() not in ("bearer", "token"):
        raise Declined
    return parts[1]


def authorized_answer(
    request, columns: Sequence[str], params: dict[str, Any], *, cte: str = ""
) -> tuple:
    """The ``columns`` (SQL expressions over ``params``) computed for a valid token, in the
    statement that checks it (exists, not revoked, not expired) and records its last use as
    ``BearerTokenAuthentication`` does. ``Declined`` when the token does not pass (DRF gives
    its 401). The token's rate limit is counted alongside (``LeanApp``; a request left to
    Django is counted once: ``_settle``). ``cte``: a common table
    expression the columns may read (``name AS (...)``), evaluated only if they do."""
    sql = _statement(tuple(columns), cte)
    now = timezone.now()
    key_hash = request.META.get(HASH_KEY) or hash_token(bearer_key(request))
    row = run(sql, {**params, "now": now, "key_hash": key_hash})
    if row is None or not row[1]:
        raise Declined
    request.META[TOKEN_KEY] = (row[0], row[2] or 0)
    return row[3:]


def run(sql: str, params: dict[str, Any]) -> tuple | None:
    """One statement on this thread's connection: a reused connection found broken is closed
    and the statement retried once on a fresh one; any other database error: ``Declined``."""
    conn = connections["default"]
    for _attempt in range(2):
        reused = conn.connection is not None
        if reused and not conn.in_atomic_block and _obsolete(conn):
            conn.close()
            reused = False
        conn.health_check_done = True  # type: ignore[attr-defined]  # the retry below is the check
        try:
            return _fetch(conn, sql, params)
        except (OperationalError, InterfaceError):
            if not reused or conn.in_atomic_block:
                raise Declined from None
            conn.close()
        except DatabaseError:
            raise Declined from None
    raise Declined


def prepared_row(sql: str, params: dict[str, Any]) -> tuple | None:
    """The first row of ``sql`` on the default connection, prepared once per connection on
    PostgreSQL (``_fetch``): for the hot HTML pages' statements, whose errors are Django's
    (no retry, no ``Declined``)."""
    return _fetch(connections["default"], sql, params)


def prepared_rows(sql: str, params: dict[str, Any]) -> list[tuple]:
    """Every row of ``sql``, as ``prepared_row``."""
    return _fetch(connections["default"], sql, params, every=True)


def _fetch(conn, sql: str, params: dict[str, Any], every: bool = False) -> Any:
    """The first row of ``sql`` (``every``: all its rows): on PostgreSQL through a
    server-side binding cursor kept with the connection, the statement prepared on first use
    (the lean statements, one per route shape, are then planned once per connection, not per
    request: Django's cursors bind client-side, which psycopg never prepares), errors
    translated as ``conn.cursor()``'s are and the statement logged where Django logs queries;
    another database's plain cursor."""
    if conn.vendor != "postgresql":
        with conn.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if every else cursor.fetchone()
    conn.validate_thread_sharing()
    conn.ensure_connection()
    start = time.monotonic()
    with conn.wrap_database_errors:
        cursor = _lean_cursor(conn)
        cursor.execute(sql, params, prepare=True)
        found = cursor.fetchall() if every else cursor.fetchone()
    if conn.queries_logged:
        conn.queries_log.append({"sql": sql, "time": f"{time.monotonic() - start:.3f}"})
    return found


def _lean_cursor(conn) -> psycopg.Cursor:
    """This connection's cursor of the lean statements (a new one after a reconnection)."""
    kept = getattr(conn, "_lean_cursor", None)
    if kept is None or kept.connection is not conn.connection or kept.closed:
        kept = conn._lean_cursor = psycopg.Cursor(conn.connection)
    return kept


def _obsolete(conn) -> bool:
    return conn.close_at is not None and time.monotonic() >= conn.close_at
