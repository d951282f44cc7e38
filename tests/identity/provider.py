"""A real OpenID provider on loopback for the identity tests: the npm package ``oidc-provider``
(installed with npm into ``var/oidc-provider`` on first use, or by ``make oidc-provider``) run
by the machine's Node.js with ``tests/identity/oidc_provider.mjs``."""

import fcntl
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlparse

import pytest
import requests

from tests.live_portal import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
VERSION = "9.13.3"
PREFIX = Path(os.environ.get("OIDC_PROVIDER_PREFIX", ROOT / "var" / "oidc-provider"))
MODULE = PREFIX / "node_modules" / "oidc-provider" / "lib" / "index.js"
SCRIPT = Path(__file__).with_name("oidc_provider.mjs")
CLIENT_ID = "backline-tests"
CLIENT_SECRET = "a-client-secret-for-the-tests-only-0123456789"
PROVIDER_NAME = "Test IdP"


def install() -> Path:
    """npm install oidc-provider@VERSION into PREFIX once (a file lock: xdist processes)."""
    PREFIX.mkdir(parents=True, exist_ok=True)
    with open(PREFIX / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        package = MODULE.parent.parent / "package.json"
        if package.exists() and json.loads(package.read_text()).get("version") == VERSION:
            return MODULE
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail(
                "npm not found: the identity tests need Node.js and npm (apt-get install npm)"
            )
        out = subprocess.run(
            [
                npm,
                "install",
                "--no-save",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(PREFIX),
                f"oidc-provider@{VERSION}",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if out.returncode != 0 or not MODULE.exists():
            pytest.fail(f"npm install oidc-provider@{VERSION} failed:\n{out.stdout}\n{out.stderr}")
    return MODULE


class Provider(ServerProcess):
    name = "oidc-provider"

    def __init__(self, workdir: Path, backline_url: str, *, logout=True, userinfo_only=False):
        self.workdir = workdir
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.accounts_file = workdir / "accounts.json"
        self.config_file = workdir / "provider.json"
        self.logfile = workdir / "provider.log"
        self.backline_url = backline_url
        self.logout = logout
        self.userinfo_only = userinfo_only  # email and groups only at the userinfo endpoint
        self.set_accounts({})

    def set_accounts(self, accounts: dict) -> None:
        """``{sub: {login, password, email, email_verified, name, groups, tamper}}``; read by
        the provider at every sign-in."""
        tmp = self.accounts_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(accounts))
        tmp.replace(self.accounts_file)

    def start(self, timeout=60):
        self.config_file.write_text(
            json.dumps(
                {
                    "module": str(install()),
                    "port": self.port,
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "redirect_uris": [f"{self.backline_url}/oidc/callback/"],
                    "post_logout_redirect_uris": [f"{self.backline_url}/login/"],
                    "accounts_file": str(self.accounts_file),
                    "logout": self.logout,
                    "userinfo_only": self.userinfo_only,
                }
            )
        )
        discovery = f"{self.issuer}/.well-known/openid-configuration"
        try:
            return self.spawn(
                ["node", str(SCRIPT), str(self.config_file)],
                env=dict(os.environ),
                ready_url=discovery,
                timeout=timeout,
            )
        except RuntimeError as exc:
            pytest.fail(str(exc))

    def configure(self, settings, **extra):
        """Point Backline's settings at this provider."""
        settings.OIDC_ISSUER = self.issuer
        settings.OIDC_CLIENT_ID = CLIENT_ID
        settings.OIDC_CLIENT_SECRET = CLIENT_SECRET
        settings.OIDC_PROVIDER_NAME = PROVIDER_NAME
        for key, value in extra.items():
            setattr(settings, key, value)


def warm_up(backline_url: str, timeout: float = 180) -> None:
    """The live server's first request imports every URLconf (scim2-models builds its pydantic
    models then) and compiles the templates: on a busy machine that can outlast the tests'
    per-request timeouts, so it is made here, with a long one."""
    resp = requests.get(f"{backline_url}/login/", timeout=timeout)
    assert resp.status_code == 200, resp.text[:300]


def provider_fixture(live_server, tmp_path, settings):
    """A running oidc-provider whose client's callback is this test's live Backline; Backline's
    OIDC settings point at it (the ``provider`` fixture of tests/identity and tests/e2e)."""
    p = Provider(tmp_path, live_server.url).start()
    p.configure(settings)
    warm_up(live_server.url)
    try:
        yield p
    finally:
        p.stop()


# --- driving a sign-in over HTTP (the browser tests use Chromium instead) -------------------
FORM_ACTION = re.compile(r'<form method="post" action="([^"]+)"')


def to_callback(
    session: requests.Session, backline_url: str, login: str, password: str, params=None
) -> str:
    """Start single sign-on at Backline (``params``: its query, e.g. ``next``), sign in on the
    provider's page and return the URL the provider sends the browser back to
    (``/oidc/callback/?code=...&state=...``), not followed."""
    resp = session.get(f"{backline_url}/oidc/login/", params=params, timeout=20)
    assert resp.status_code == 200 and "Test IdP" in resp.text, resp.text[:500]
    action = FORM_ACTION.search(resp.text)
    assert action, resp.text[:500]
    resp = session.post(
        urljoin(resp.url, action.group(1)),
        data={"login": login, "password": password},
        allow_redirects=False,
        timeout=20,
    )
    for _ in range(10):
        assert resp.status_code in (302, 303), (resp.status_code, resp.text[:500])
        location = urljoin(resp.url, resp.headers["Location"])
        if location.startswith(f"{backline_url}/oidc/callback/"):
            return location
        resp = session.get(location, allow_redirects=False, timeout=20)
    raise AssertionError("the provider never sent the browser back to Backline")


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}


if __name__ == "__main__":  # make oidc-provider
    print(install())
