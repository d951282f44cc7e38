"""Git's reference name rules (``git check-ref-format``), in Python, for branch and tag names that
come from outside (webhooks, the API, workspace settings) before they are given to git.

The rules, from git-check-ref-format(1): no path component starts with ``.`` or ends with
``.lock``; no ``..``; no ASCII control character, space, ``~ ^ : ? * [ \\``; no leading or
trailing ``/`` and no ``//``; no trailing ``.``; no ``@{``; not the single ``@``. A branch name
(``--branch``) also may not start with ``-`` and may not be ``HEAD``. Anything else is allowed,
non-ASCII letters included (``feature/ümlaut``, ``fix#12``, ``a,b=c``).
"""

import re

MAX_BYTES = 255  # the column length of the refs Backline stores; git itself has no limit

_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//")


def check_ref_format(name: str) -> bool:
    """``git check-ref-format --allow-onelevel <name>``."""
    if not isinstance(name, str) or not name or name == "@":
        return False
    if name.startswith("/") or name.endswith("/") or name.endswith("."):
        return False
    if _FORBIDDEN.search(name):
        return False
    return all(
        part and not part.startswith(".") and not part.endswith(".lock") for part in name.split("/")
    )


def valid_branch(name: str) -> bool:
    """``git check-ref-format --branch <name>`` (and short enough to store)."""
    if not isinstance(name, str) or name.startswith("-") or name == "HEAD":
        return False
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return size <= MAX_BYTES and check_ref_format(name)
