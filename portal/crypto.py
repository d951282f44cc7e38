"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) under
``BACKLINE_SECRETS_KEY``, with :class:`~cryptography.fernet.MultiFernet` for rotation.

``BACKLINE_SECRETS_KEY`` is a comma-separated list of Fernet keys: the first encrypts, every one
decrypts (so a rotation can list the new key first and the old one after it while
``manage.py rotate_secrets_key`` re-encrypts every row). It is required when
``BACKLINE_PRODUCTION`` is true; otherwise (the embedded/dev mode) a key is generated once into
``<BACKLINE_VAR_DIR>/secrets.key`` (mode 0600) and used from then on.

A stored value is ``fernet:<token>``; a value without the prefix is read as written (rows from
before encryption, until their data migration re-saves them). The empty string stays empty, so
``exclude(field="")`` still finds the rows that have a secret.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

PREFIX = "fernet:"
KEY_FILE_NAME = "secrets.key"


class SecretUnreadable(Exception):
    """A stored secret none of the configured keys decrypts (wrong or missing key)."""


def key_file() -> Path:
    return Path(settings.VAR_DIR) / KEY_FILE_NAME


def _read_key_file(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def write_key_file(path: Path, keys: list[str]) -> None:
    """Write ``keys`` (one a line) to ``path`` with mode 0600, atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(keys) + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


_file_cache: dict[str, tuple[tuple[int, int], list[str]]] = {}


def _cached_read(path: Path) -> list[str]:
    """The key file's keys, read again only when it changed (a rotation rewrites it)."""
    st = path.stat()
    stamp = (st.st_mtime_ns, st.st_size)
    hit = _file_cache.get(str(path))
    if hit is None or hit[0] != stamp:
        hit = (stamp, _read_key_file(path))
        _file_cache[str(path)] = hit
    return hit[1]


def _generated_keys() -> list[str]:
    path = key_file()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return _cached_read(path)
        with os.fdopen(fd, "w") as fh:
            fh.write(Fernet.generate_key().decode() + "\n")
    return _cached_read(path)


def uses_key_file() -> bool:
    return not settings.SECRETS_KEYS


def keys() -> list[str]:
    """The configured keys, the encrypting one first."""
    configured = list(settings.SECRETS_KEYS)
    if configured:
        return configured
    if settings.PRODUCTION:
        raise ImproperlyConfigured(
            "BACKLINE_SECRETS_KEY must be set when BACKLINE_PRODUCTION is true"
        )
    return _generated_keys()


@lru_cache(maxsize=4)
def _fernet_for(joined: str) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key.encode()) for key in joined.split(",")])
    except (ValueError, TypeError):
        where = key_file() if uses_key_file() else "BACKLINE_SECRETS_KEY"
        raise ImproperlyConfigured(f"{where}: a key is not a Fernet key") from None


def fernet() -> MultiFernet:
    return _fernet_for(",".join(keys()))


def encrypt(value: str) -> str:
    if value is None or value == "":
        return value
    return PREFIX + fernet().encrypt(value.encode()).decode()


def decrypt(stored: str) -> str:
    if not stored or not stored.startswith(PREFIX):
        return stored
    try:
        return fernet().decrypt(stored[len(PREFIX) :].encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "a stored secret cannot be decrypted with BACKLINE_SECRETS_KEY (wrong key, or an old"
            " key removed before `manage.py rotate_secrets_key` finished)"
        ) from None


def is_encrypted(stored) -> bool:
    return isinstance(stored, str) and stored.startswith(PREFIX)
