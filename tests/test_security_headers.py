"""Issue 14: a Content-Security-Policy with no inline script, no-store on pages showing a secret,
no framing. The browser side (the pages still work under the policy, no violation reported) is
in tests/e2e/test_csp_e2e.py."""

import re
from pathlib import Path

import pytest
from django.test import Client

from tests.conftest import client_for

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
# <script> without src (a JSON data block is not script), on*= handlers, javascript: URLs
INLINE_SCRIPT = re.compile(
    r"<script\b(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I
)
HANDLER = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I)
JS_URL = re.compile(r"""(?:href|src|action)\s*=\s*["']\s*javascript:""", re.I)
# htmx evaluates trigger filters ("every 5s [expr]") with eval, which the policy forbids
# (a "from:input[type=search]" CSS selector is no filter)
HTMX_EVAL = re.compile(r"""hx-on|hx-vars|["']js:""", re.I)
TRIGGER = re.compile(r"""hx-trigger\s*=\s*["']([^"']*)["']""", re.I)


def _offences(html: str) -> list[str]:
    found = []
    for rx in (INLINE_SCRIPT, HANDLER, JS_URL, HTMX_EVAL):
        found += [m.group(0)[:80] for m in rx.finditer(html)]
    for m in TRIGGER.finditer(html):
        if "[" in re.sub(r"\b(?:from|target):\S+", "", m.group(1)):
            found.append(m.group(0)[:80])
    return found


def test_no_template_has_inline_script_or_handlers():
    bad = {}
    for path in sorted((ROOT / "templates").rglob("*.html")):
        offences = _offences(path.read_text())
        if offences:
            bad[str(path.relative_to(ROOT))] = offences
    assert bad == {}


def test_pages_send_csp_no_framing_and_the_other_headers(alice):
    c = client_for(alice)
    for url in ("/", "/catalog/", "/tokens/", "/login/", "/api/v1/me/", "/admin/login/"):
        r = c.get(url)
        csp = r.headers.get("Content-Security-Policy", "")
        directives = {d.split()[0]: d.split()[1:] for d in csp.split("; ") if d}
        assert directives.get("script-src") == ["'self'"], (url, csp)
        assert directives.get("frame-ancestors") == ["'none'"], (url, csp)
        assert directives.get("object-src") == ["'none'"], (url, csp)
        assert "'unsafe-eval'" not in csp and "'unsafe-inline'" not in directives["script-src"]
        assert r.headers.get("X-Frame-Options") == "DENY", url
        assert r.headers.get("X-Content-Type-Options") == "nosniff", url
        assert r.headers.get("Referrer-Policy") == "same-origin", url
    assert _offences(c.get("/").content.decode()) == []


def test_api_docs_allow_their_bundle_host_only_there(alice):
    c = client_for(alice)
    r = c.get("/api/docs/")
    assert r.status_code == 200
    html = r.content.decode()
    assert INLINE_SCRIPT.search(html) is None  # the init script is a file of its own
    script = re.search(r'<script src="(/api/docs/\?[^"]*script[^"]*)"', html)
    assert script, html
    init = c.get(script.group(1).replace("&amp;", "&"))
    assert init.status_code == 200 and "SwaggerUIBundle" in init.content.decode()
    csp = r.headers["Content-Security-Policy"]
    script_src = next(d for d in csp.split("; ") if d.startswith("script-src"))
    assert script_src.startswith("script-src 'self' https://")
    # every other page keeps 'self' only
    assert "https://" not in c.get("/").headers["Content-Security-Policy"]


def test_new_token_page_is_never_cached(alice, squad):
    c = Client()
    c.force_login(alice)
    r = c.post("/tokens/", {"squad": squad.slug, "name": "ci", "scopes": ["catalog:write"]})
    assert r.status_code == 200 and 'id="new-token"' in r.content.decode()
    cache = r.headers.get("Cache-Control", "")
    assert "no-store" in cache and "private" in cache, cache
    assert "no-store" in c.get("/tokens/").headers.get("Cache-Control", "")


def test_api_answers_are_not_stored(alice, squad):
    c = client_for(alice)
    r = c.post("/api/v1/tokens/", {"squad": squad.slug, "name": "ci", "scopes": []}, format="json")
    assert r.status_code == 201, r.content
    assert r.headers.get("Cache-Control") == "no-store"
    assert client_for(alice).get("/api/v1/services/").headers.get("Cache-Control") == "no-store"
