"""Credentials inside URLs, and URLs that are credentials: how they are shown.

- A URL with a user-info part (``https://user:token@host/org/repo.git``) is shown as
  ``https://****@host/org/repo.git`` (:func:`redact_credentials`).
- A URL that is itself the credential (a Slack incoming webhook) is shown as its scheme and host
  only: ``https://hooks.slack.com/…/****`` (:func:`redact_secret_url`).

Both are write-only: a form or an API call that sends back the redacted text keeps the stored
value (:func:`keep_if_redacted`). :func:`url_credentials` lists what log masking must hide.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

USERINFO_RE = re.compile(r"^([a-z][a-z0-9+.\-]*://)([^@/]+)@", re.I)
# scheme://user:password@ anywhere in a text (a log line, an imported annotation)
EMBEDDED_CREDENTIALS_RE = re.compile(r"\b([a-z][a-z0-9+.\-]*://)[^\s@/:]+:[^\s@/]+@", re.I)
MASK = "****"


def redact_embedded_credentials(text: str, mask: str = MASK) -> str:
    """Every ``scheme://user:password@`` in ``text`` as ``scheme://<mask>@``."""
    if not text or "@" not in text:
        return text
    return EMBEDDED_CREDENTIALS_RE.sub(rf"\1{mask}@", text)


def url_credentials(url: str) -> list[str]:
    """Credentials written into a URL (``https://user:token@host/...``): the user-info and the
    password (or the user, for ``https://token@host``)."""
    m = USERINFO_RE.match(url or "")
    if not m:
        return []
    user, _, password = m.group(2).partition(":")
    return [v for v in (m.group(2), password or user) if v]


def has_credentials(url: str) -> bool:
    return bool(USERINFO_RE.match(url or ""))


def redact_credentials(url: str) -> str:
    return USERINFO_RE.sub(rf"\1{MASK}@", url or "")


def redact_secret_url(url: str) -> str:
    """``https://hooks.slack.com/…/****``: scheme and host, never the path or query."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    if not parts.scheme or not host:
        return MASK
    return f"{parts.scheme}://{host}/…/{MASK}"


def keep_if_redacted(new: str | None, old: str, *, secret_url: bool = False) -> str | None:
    """``old`` when ``new`` is the redacted form of it (a form posted back unchanged)."""
    if new is None or not old:
        return new
    shown = redact_secret_url(old) if secret_url else redact_credentials(old)
    return old if new.strip() == shown and shown != old else new


def scrub_url(text: str, url: str) -> str:
    """``text`` (an error message naming ``url``) with the URL's credential parts (user-info,
    path, query) replaced by ``****``: a Slack URL's path is its secret."""
    if not text or not url:
        return text
    try:
        parts = urlsplit(url)
    except ValueError:
        return text.replace(url, MASK)
    text = text.replace(url, redact_secret_url(url))
    for piece in (parts.path + ("?" + parts.query if parts.query else ""), parts.path):
        if len(piece) > 1:
            text = text.replace(piece, "/…/" + MASK)
    for cred in url_credentials(url):
        text = text.replace(cred, MASK)
    return text
