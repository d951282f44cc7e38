"""Backstage lifecycles are free strings; Backline files each under one of its three."""

from squads.models import Lifecycle

# Words seen in public catalogs (Backstage's examples, backstage/demo, Red Hat Developer Hub,
# openedx...), compared lower-case. Anything else counts as experimental.
_WORDS = {
    Lifecycle.PRODUCTION.value: (
        "production",
        "prod",
        "live",
        "ga",
        "stable",
        "released",
        "active",
        "mature",
        "supported",
        "operational",
    ),
    Lifecycle.DEPRECATED.value: (
        "deprecated",
        "decommissioned",
        "retired",
        "sunset",
        "sunsetting",
        "eol",
        "end-of-life",
        "legacy",
        "obsolete",
        "archived",
        "unmaintained",
        "inactive",
        "removed",
    ),
}
_MAP = {word: value for value, words in _WORDS.items() for word in words}


def map_lifecycle(raw: str) -> str:
    """experimental | production | deprecated for any Backstage lifecycle string."""
    return _MAP.get(raw.strip().lower(), Lifecycle.EXPERIMENTAL.value)
