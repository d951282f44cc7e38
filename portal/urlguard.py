"""The outbound URL guard: every server-side fetch of a URL a user supplied goes through here.

Catalog locations and ``$text`` definitions (``squads.backstage``), metrics scraping
(``metrics.scrape``), alert channels, event subscriptions and the webhook deploy driver
(``portal.outbound``), the demo deploy driver, and git remotes (``portal.gitsource``).

The rules:

- **schemes per use** (``USES``): catalogs, scraping and webhooks ``http``/``https``; git also
  ``ssh`` and, only under a ``file:<folder>`` entry of ``BACKLINE_OUTBOUND_ALLOW``, local paths.
- **resolve, check, then connect to the checked address**: the host is resolved once, every
  address it resolves to must pass, and the connection goes to that address (TLS still checks the
  certificate against the host name, ``Host`` is the host name): a second, different DNS answer
  (DNS rebinding) is never used. Git gets the same pin through ``http.curloptResolve``.
- **link-local and metadata addresses are always refused** (``ALWAYS_REFUSED``: 169.254/16,
  fe80::/10, 0.0.0.0/8, cloud metadata addresses, multicast, broadcast).
- **loopback and private ranges** (``PRIVATE``) are refused unless an entry of
  ``BACKLINE_OUTBOUND_ALLOW`` covers the address; ``BACKLINE_OUTBOUND_DENY`` refuses more
  (public ranges too). Between ALLOW and DENY the most specific entry wins, DENY on a tie.
- **redirects** (GETs only, at most ``MAX_REDIRECTS``) are checked again at every hop.
- **sizes and times are capped**: ``max_bytes`` of body, read as it streams (a declared
  ``Content-Length`` over the cap is refused before reading), and one total ``timeout`` for the
  whole exchange, redirects included (a watchdog closes the socket at the deadline, so a slow
  drip cannot hold a worker).

A refused URL raises ``Refused`` (a ``FetchError``); ``validate_url`` turns it into a 400 naming
the field at save time (a host that does not resolve yet is accepted then, and checked at use).
Callers never show a remote server's error body to anyone: a failure is described by its status.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import certifi
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from portal.errors import Invalid

USES = {
    "catalog": ("http", "https"),
    "scrape": ("http", "https"),
    "webhook": ("http", "https"),
    "git": ("http", "https", "ssh"),
}
MAX_REDIRECTS = 5
CHUNK = 65536

IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address

ALWAYS_REFUSED = tuple(
    ipaddress.ip_network(n)
    for n in (
        "169.254.0.0/16",  # link-local, AWS/GCP/Azure/OpenStack metadata (169.254.169.254)
        "fe80::/10",  # IPv6 link-local
        "0.0.0.0/8",  # "this host": connecting to 0.0.0.0 reaches loopback
        "::/128",
        "100.100.100.200/32",  # Alibaba Cloud metadata
        "fd00:ec2::254/128",  # AWS metadata over IPv6
        "224.0.0.0/4",  # multicast
        "ff00::/8",
        "255.255.255.255/32",
    )
)
PRIVATE = tuple(
    ipaddress.ip_network(n)
    for n in (
        "127.0.0.0/8",
        "::1/128",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",  # carrier-grade NAT
        "198.18.0.0/15",  # benchmarking
        "192.0.0.0/24",  # IETF protocol assignments
        "240.0.0.0/4",  # reserved
        "fc00::/7",  # unique local
        "64:ff9b:1::/48",  # local-use NAT64
    )
)
_DENY, _ALLOW = 2, 1  # at the same prefix length DENY wins


class FetchError(Exception):
    """The fetch did not succeed (network error, refused, too large, too slow)."""


class Refused(FetchError):
    """The guard refuses the URL (scheme, address, or a redirect to such a URL)."""


class Timeout(FetchError):
    pass


class TooLarge(FetchError):
    pass


# --- policy ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Policy:
    rules: tuple[tuple[IPNet, int], ...]  # (network, _ALLOW or _DENY)
    local_roots: tuple[Path, ...]  # `file:<folder>` entries of ALLOW

    def verdict(self, ip: IPAddr) -> str | None:
        """Why ``ip`` is refused, or None."""
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if any(ip in n for n in ALWAYS_REFUSED if n.version == ip.version):
            return f"{ip} is a link-local, metadata or broadcast address (always refused)"
        best: tuple[int, int] | None = None  # the most specific ALLOW / DENY entry
        for net, rank in self.rules:
            if net.version == ip.version and ip in net:
                key = (net.prefixlen, rank)
                best = key if best is None or key > best else best
        if best is not None:
            return f"{ip} is in BACKLINE_OUTBOUND_DENY" if best[1] == _DENY else None
        if any(ip in n for n in PRIVATE if n.version == ip.version):
            return f"{ip} is a loopback or private address (allow it with BACKLINE_OUTBOUND_ALLOW)"
        return None

    def local_allowed(self, path: str) -> bool:
        real = Path(path).resolve()
        inside = any(real.is_relative_to(root) for root in self.local_roots)
        own = Path(settings.WORKSPACE_ROOT).resolve()
        return inside and not real.is_relative_to(own)  # never Backline's caches and checkouts


def policy() -> Policy:
    return _policy(tuple(settings.OUTBOUND_ALLOW), tuple(settings.OUTBOUND_DENY))


@lru_cache(maxsize=8)
def _policy(allow: tuple[str, ...], deny: tuple[str, ...]) -> Policy:
    rules: list[tuple[IPNet, int]] = []
    roots = []
    for name, entries, rank in (
        ("BACKLINE_OUTBOUND_ALLOW", allow, _ALLOW),
        ("BACKLINE_OUTBOUND_DENY", deny, _DENY),
    ):
        for entry in entries:
            if entry.startswith("file:") and rank == _ALLOW:
                roots.append(Path(entry[5:] or "/").resolve())
                continue
            try:
                rules.append((ipaddress.ip_network(entry, strict=False), rank))
            except ValueError:
                raise ImproperlyConfigured(f"{name}: {entry!r} is not a CIDR range") from None
    return Policy(tuple(rules), tuple(roots))


# --- checking a URL ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str  # as written (IDNA-encoded), without brackets
    port: int
    address: str  # the checked address the connection goes to
    path: str  # path and query
    auth: str | None = None  # "user:password" from the URL


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (tests patch ``socket.getaddrinfo``)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"could not resolve {host}: {exc}") from None
    return list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))


def parse(url: str, use: str) -> tuple:
    """(scheme, host, port, path, auth) of an allowed-scheme URL; raises Refused."""
    url = (url or "").strip()
    if url.startswith("-"):
        raise Refused(f"{url!r} is not a URL")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused(f"{url!r} is not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in USES[use]:
        allowed = ", ".join(USES[use])
        raise Refused(f"{url!r}: the scheme must be one of {allowed}")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise Refused(f"{url!r} has no host")
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise Refused(f"{url!r}: {host!r} is not a valid host name") from None
    port = port or {"https": 443, "ssh": 22}.get(scheme, 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    auth = None
    if parts.username is not None:
        auth = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    return scheme, host, port, path, auth


def check_url(url: str, *, use: str, lookup: bool = True) -> Target:
    """Resolve the URL's host and check every address; the returned target is what to connect
    to. Raises ``Refused`` (or ``FetchError`` when the host does not resolve). ``lookup=False``
    (bulk saves such as an import) checks the scheme and an address written in the URL only,
    leaving a host name to the check at use (``address`` is then empty)."""
    scheme, host, port, path, auth = parse(url, use)
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        if not lookup:
            return Target(url.strip(), scheme, host, port, "", path, auth)
        addresses = [ipaddress.ip_address(a) for a in resolve(host, port)]
    if not addresses:
        raise FetchError(f"could not resolve {host}")
    pol = policy()
    for ip in addresses:
        why = pol.verdict(ip)
        if why:
            raise Refused(f"{_shown(url)} is refused by the outbound URL guard: {why}")
    return Target(url.strip(), scheme, host, port, str(addresses[0]), path, auth)


def validate_url(url: str, *, use: str, field: str) -> None:
    """Save-time check: a 400 (``Invalid``) naming ``field`` when the guard refuses ``url``; a
    host that does not resolve now is accepted (it is checked again at every use)."""
    try:
        check_url(url, use=use)
    except Refused as exc:
        raise Invalid(errors={field: str(exc)}) from None
    except FetchError:
        return


def _shown(url: str) -> str:
    """The URL without credentials, for messages."""
    parts = urlsplit(url.strip())
    if parts.username is None:
        return url.strip()
    netloc = "***@" + parts.netloc.rsplit("@", 1)[-1]
    return parts._replace(netloc=netloc).geturl()


# --- the HTTP client ---------------------------------------------------------------------------
@dataclass
class Response:
    status_code: int
    headers: dict
    content: bytes
    url: str
    history: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        charset = "utf-8"
        for part in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip('"')
        try:
            return self.content.decode(charset, "replace")
        except LookupError:
            return self.content.decode("utf-8", "replace")

    def json(self):
        from portal.safeparse import loads_json

        return loads_json(self.content)


@lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()  # the system's CAs (SSL_CERT_FILE too)
    ctx.load_verify_locations(certifi.where())  # and the bundle requests uses
    return ctx


def request(
    method: str,
    url: str,
    *,
    use: str,
    timeout: float,
    max_bytes: int,
    body: bytes | None = None,
    headers: dict | None = None,
    redirects: int = 0,
) -> Response:
    """One guarded HTTP exchange. ``timeout`` bounds all of it (redirects included);
    ``redirects``: how many to follow (GET/HEAD only), each checked again. Any status is
    returned; raises ``FetchError`` (``Refused``, ``Timeout``, ``TooLarge``)."""
    deadline = time.monotonic() + timeout
    history: list[str] = []
    while True:
        target = check_url(url, use=use)
        resp = _exchange(target, method, body, headers or {}, deadline, timeout, max_bytes)
        location = resp.headers.get("location")
        if not (300 <= resp.status_code < 400 and location and method in ("GET", "HEAD")):
            resp.history = history
            return resp
        if len(history) >= redirects:
            if redirects:
                raise FetchError(f"{_shown(url)}: more than {redirects} redirects")
            resp.history = history
            return resp
        history.append(url)
        url = urljoin(url, location)


def _exchange(target: Target, method, body, headers, deadline, timeout, max_bytes) -> Response:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise Timeout(f"{_shown(target.url)}: timed out after {timeout:g} s")
    try:
        sock = socket.create_connection((target.address, target.port), timeout=remaining)
    except TimeoutError:
        raise Timeout(f"{_shown(target.url)}: timed out after {timeout:g} s") from None
    except OSError as exc:
        raise FetchError(
            f"could not connect to {_shown(target.url)}: {exc.strerror or exc}"
        ) from None
    expired = threading.Event()

    def kill():
        expired.set()
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), kill)
    watchdog.daemon = True
    watchdog.start()
    try:
        resp = _talk(target, sock, method, body, headers, max_bytes)
        if expired.is_set():  # the watchdog's shutdown reads as the end of the body
            raise Timeout(f"{_shown(target.url)}: timed out after {timeout:g} s")
        return resp
    except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
        if expired.is_set() or isinstance(exc, TimeoutError):
            raise Timeout(f"{_shown(target.url)}: timed out after {timeout:g} s") from None
        raise FetchError(f"{_shown(target.url)}: {exc.__class__.__name__}: {exc}") from None
    finally:
        watchdog.cancel()
        sock.close()


def _talk(target: Target, sock, method, body, headers, max_bytes) -> Response:
    conn: http.client.HTTPConnection
    if target.scheme == "https":
        sock = _tls().wrap_socket(sock, server_hostname=target.host)
        conn = http.client.HTTPSConnection(target.host, target.port, context=_tls())
    else:
        conn = http.client.HTTPConnection(target.host, target.port)
    conn.sock = sock  # already connected to the checked address: no second lookup
    sent = {"User-Agent": "Backline/1", **headers, "Connection": "close"}
    if target.auth and not any(k.lower() == "authorization" for k in sent):
        sent["Authorization"] = "Basic " + base64.b64encode(target.auth.encode()).decode()
    conn.request(method, target.path, body=body, headers=sent)
    resp = conn.getresponse()
    got = {k.lower(): v for k, v in resp.getheaders()}
    declared = got.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge(f"{_shown(target.url)}: the answer is larger than {_size(max_bytes)}")
    chunks, size = [], 0
    while True:
        chunk = resp.read1(CHUNK)
        if not chunk:
            break
        size += len(chunk)
        if size > max_bytes:
            raise TooLarge(f"{_shown(target.url)}: the answer is larger than {_size(max_bytes)}")
        chunks.append(chunk)
    return Response(resp.status, got, b"".join(chunks), target.url)


def _size(n: int) -> str:
    return f"{n // 2**20} MB" if n >= 2**20 else f"{n // 1024} KB" if n >= 1024 else f"{n} bytes"
