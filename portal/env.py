"""Tiny typed helpers for settings read from environment variables.

Each helper fails loudly (ImproperlyConfigured) on a value it cannot parse, naming the variable.
"""

import importlib.util
import os
from pathlib import Path

from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from portal.sandbox import parse_size

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true/false, 1/0, yes/no)")


def _env_number(name: str, default, parse, what: str):
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return parse(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not {what}") from None


def env_int(name: str, default: int) -> int:
    return _env_number(name, default, int, "an integer")


def env_float(name: str, default: float) -> float:
    return _env_number(name, default, float, "a number")


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_map(name: str) -> dict[str, str]:
    """``"key=value,..."`` as ``{"key": "value"}``; an item without a key or a value is skipped."""
    return {
        key.strip(): value.strip()
        for key, _, value in (item.partition("=") for item in env_list(name, []))
        if key.strip() and value.strip()
    }


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name, default).strip()
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} must be one of {', '.join(choices)}")
    return value


def env_executable(name: str, candidates: list[str], default: str) -> str:
    """The command in ``name`` when it is set and not empty; else the first of ``candidates``
    that is an executable file; else ``default`` (looked up on PATH when it is run)."""
    raw = os.environ.get(name, "").strip()
    if raw:
        return raw
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return default


def package_file(package: str, *parts: str) -> str:
    """The path of a file an installed package ships (``""`` when it is not installed), found
    without importing the package: a default for :func:`env_executable`."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.origin:
        return ""
    return str(Path(spec.origin).parent.joinpath(*parts))


def env_size(name: str, default: str) -> int:
    """Bytes from a size such as ``2g``, ``512m``, ``1GiB`` or a number of bytes."""
    raw = os.environ.get(name, "").strip() or default
    try:
        return parse_size(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={raw!r}: {exc}") from None


def env_fernet_keys(name: str) -> list[str]:
    """Comma-separated Fernet keys (32 url-safe base64 bytes each), the first one first."""
    keys = env_list(name, [])
    for i, key in enumerate(keys):
        try:
            Fernet(key.encode())
        except (ValueError, TypeError):
            raise ImproperlyConfigured(
                f"{name}: key {i + 1} is not a Fernet key (32 url-safe base64 bytes; make one"
                " with `python -c 'from cryptography.fernet import Fernet;"
                " print(Fernet.generate_key().decode())'`)"
            ) from None
    return keys
