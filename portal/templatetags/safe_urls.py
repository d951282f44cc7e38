"""``{{ url|safe_href }}``: a URL people typed or imported, fit for an ``href``.

Web and mail URLs, and relative ones, pass; anything else (``javascript:``, ``data:``,
``vbscript:``, …, however it is spelled with blanks and control characters) becomes "".
Registered as a template builtin in settings, so templates need no ``{% load %}``.
"""

import re
from urllib.parse import urlsplit

from django import template

from portal.urlsecrets import redact_credentials, redact_secret_url

register = template.Library()

SAFE_SCHEMES = {"", "http", "https", "mailto", "ftp", "ftps", "ssh", "git"}
_BLANKS = re.compile(r"[\x00-\x20\x7f]+")


@register.filter
def safe_href(value) -> str:
    url = str(value or "").strip()
    try:
        scheme = urlsplit(_BLANKS.sub("", url)).scheme.lower()
    except ValueError:
        return ""
    return url if scheme in SAFE_SCHEMES else ""


@register.filter
def no_credentials(value) -> str:
    """``https://****@host/…``: a URL with any credential in it redacted (portal.urlsecrets)."""
    return redact_credentials(str(value or ""))


@register.filter
def secret_url(value) -> str:
    """``https://hooks.slack.com/…/****``: a URL that is itself a credential."""
    return redact_secret_url(str(value or ""))
