"""``{{ url|safe_href }}``: a URL people typed or imported, fit for an ``href``.

Web and mail URLs, and relative ones, pass; anything else (``javascript:``, ``data:``,
``vbscript:``, …, however it is spelled with blanks and control characters) becomes "".
Registered as a template builtin in settings, so templates need no ``{% load %}``.
"""

import re
from urllib.parse import urlsplit

from django import template

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
