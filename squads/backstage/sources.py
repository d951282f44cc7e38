"""Reading descriptor files: local paths, directories, ``file://`` and http(s) URLs (through the
outbound URL guard: checked address, redirects re-checked, streamed with a size cap and one
total deadline)."""

import os
import posixpath
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

from portal import urlguard

MAX_SOURCE_BYTES = 10 * 1024 * 1024
HTTP_TIMEOUT = 15  # seconds for the whole fetch of one file, redirects included
MAX_REDIRECTS = 5


class SourceError(Exception):
    """A path or URL could not be read."""


class SourceMissing(SourceError):
    """The path does not exist or the URL answered 404."""


def is_missing(exc: Exception) -> bool:
    return isinstance(exc, SourceMissing)


def folder_of(origin: str | None) -> str | None:
    """The folder of a file (a path or a URL ending in ``/``)."""
    if not origin:
        return None
    if is_url(origin):
        return origin.rsplit("/", 1)[0] + "/"
    return os.path.dirname(origin)


def _url_key(url: str) -> tuple[str, str, str]:
    """(scheme, host[:port], path with %-escapes and dot segments resolved) of a URL."""
    parts = urlparse(url)
    path = posixpath.normpath(unquote(parts.path) or "/")
    if (parts.path.endswith("/") or not parts.path) and not path.endswith("/"):
        path += "/"
    return parts.scheme.lower(), parts.netloc.lower(), path


def within(root: str | None, resolved: str) -> bool:
    """Whether ``resolved`` (a path or URL) lies inside the folder ``root`` (for a URL root:
    the same scheme and host, and a path under the root's)."""
    if not root:
        return False
    if is_url(root):
        if not is_url(resolved):
            return False
        (rs, rh, rp), (s, h, p) = _url_key(root), _url_key(resolved)
        return (rs, rh) == (s, h) and p.startswith(rp if rp.endswith("/") else rp + "/")
    if is_url(resolved) or not os.path.isabs(resolved):
        return False
    real_root, real = os.path.realpath(root), os.path.realpath(resolved)  # symlinks too
    return os.path.commonpath([real_root, real]) == real_root


class Source(tuple):
    """A ``(name, text)`` pair that also knows where it came from (``origin``: an absolute
    path or an http(s) URL), so Location targets and ``$text`` placeholders inside it can be
    resolved relative to it. Plain ``(name, text)`` tuples (uploads, pasted text) have no
    origin: nothing they name is read from the server's disk or the network. ``followed``:
    the caller already read what the file's Location entities name (GitHub discovery,
    ``squads.discovery.follow``) and gives those files too; the importer reads nothing more."""

    def __new__(cls, name, text, origin=None, root=None, *, followed=False):
        obj = super().__new__(cls, (name, text))
        obj.origin = origin
        obj.root = root  # the folder given to ``load_sources`` (default: the file's own)
        obj.followed = followed
        return obj

    @property
    def name(self):
        return self[0]

    @property
    def text(self):
        return self[1]


def is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def _file_url_path(value: str) -> str:
    return unquote(urlparse(value).path)


def resolve(base: str, target: str) -> str:
    """Resolve ``target`` relative to ``base`` (an absolute path or an http(s) URL)."""
    target = target.strip()
    if is_url(target):
        return target
    if is_url(base) and target.startswith("file:"):
        raise SourceError("is a local file named by a remote (http) catalog; not allowed")
    if target.startswith("file://"):
        return os.path.normpath(_file_url_path(target))
    if is_url(base):
        return urljoin(base, target)
    if os.path.isabs(target):
        return os.path.normpath(target)
    return os.path.normpath(os.path.join(os.path.dirname(base), target))


def display_name(parent_display: str, parent_origin: str, target: str, resolved: str) -> str:
    """How a followed target is named in messages: relative targets keep the parent's style."""
    if is_url(resolved) or os.path.isabs(target.strip()) or target.startswith("file://"):
        return resolved
    if is_url(parent_display):
        return resolved
    return os.path.normpath(os.path.join(os.path.dirname(parent_display), target.strip()))


def read(origin: str) -> str:
    """Read an absolute path or http(s) URL; raise SourceError with a clear reason."""
    if is_url(origin):
        try:
            resp = urlguard.request(
                "GET",
                origin,
                use="catalog",
                timeout=HTTP_TIMEOUT,
                max_bytes=MAX_SOURCE_BYTES,
                redirects=MAX_REDIRECTS,
            )
        except urlguard.TooLarge:
            raise SourceError(f"{origin} is larger than {MAX_SOURCE_BYTES // 2**20} MB") from None
        except urlguard.FetchError as exc:
            raise SourceError(f"could not fetch {origin}: {exc}") from exc
        if resp.status_code == 404:
            raise SourceMissing(f"not found ({origin} answered 404)")
        if resp.status_code >= 300:
            raise SourceError(f"{origin} answered HTTP {resp.status_code}")
        return resp.text
    path = Path(origin)
    if not path.is_file():
        raise SourceMissing(f"not found ({origin} does not exist)")
    if path.stat().st_size > MAX_SOURCE_BYTES:
        raise SourceError(f"{origin} is larger than {MAX_SOURCE_BYTES // 2**20} MB")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"could not read {origin}: {exc}") from exc


def load_sources(paths_or_urls) -> list[Source]:
    """Files, directories (every ``*.yaml``/``*.yml`` below, sorted), ``file://`` and
    http(s) URLs → ``[(name, text), ...]`` (``Source`` objects that remember their origin)."""
    out = []
    for item in paths_or_urls:
        item = str(item)
        if is_url(item):
            out.append(Source(item, read(item), item))
            continue
        path = Path(_file_url_path(item) if item.startswith("file://") else item)
        if path.is_dir():
            files = sorted(
                p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()
            )
            if not files:
                raise SourceError(f"{item}: no *.yaml or *.yml files in this directory")
            root = os.path.normpath(str(path.resolve()))
            for f in files:
                origin = os.path.normpath(str(f.resolve()))
                out.append(Source(str(f), read(origin), origin, root))
        elif path.is_file():
            origin = os.path.normpath(str(path.resolve()))
            out.append(Source(str(path), read(origin), origin))
        else:
            raise SourceError(f"{item}: no such file or directory")
    return out
