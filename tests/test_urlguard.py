"""The outbound URL guard (``portal.urlguard``) against real loopback servers: address policy,
schemes, DNS answers (a patched ``getaddrinfo`` is the resolver boundary), DNS rebinding,
redirects to internal addresses, slow and huge bodies."""

import socket
import time

import pytest

from portal import urlguard
from portal.errors import Invalid
from tests.outbound_servers import serve, wait_until


@pytest.fixture
def strict(settings):
    """A production-like guard: nothing private allowed but 127.0.0.2."""
    settings.OUTBOUND_ALLOW = ["127.0.0.2/32"]
    settings.OUTBOUND_DENY = []
    return settings


def fake_dns(monkeypatch, answers):
    """``answers``: host -> list of answer lists, one per lookup (the last one repeats)."""
    real = socket.getaddrinfo
    calls = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        calls.append(host)
        seq = answers[host]
        ips = seq[min(len(calls) - 1, len(seq) - 1)]
        return [
            (
                socket.AF_INET6 if ":" in ip else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (ip, port),
            )
            for ip in ips
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return calls


@pytest.mark.parametrize(
    "address,refused",
    [
        ("127.0.0.1", True),
        ("127.0.0.2", False),
        ("10.1.2.3", True),
        ("172.20.0.1", True),
        ("192.168.1.1", True),
        ("100.64.0.1", True),
        ("169.254.169.254", True),
        ("0.0.0.0", True),
        ("::1", True),
        ("fe80::1", True),
        ("fd12::1", True),
        ("::ffff:169.254.169.254", True),
        ("::ffff:127.0.0.1", True),
        ("fd00:ec2::254", True),
        ("100.100.100.200", True),
        ("93.184.216.34", False),
        ("2606:2800:220:1::1", False),
    ],
)
def test_address_policy(strict, address, refused):
    import ipaddress

    why = urlguard.policy().verdict(ipaddress.ip_address(address))
    assert bool(why) == refused, why


def test_link_local_and_metadata_stay_refused_whatever_is_allowed(settings):
    import ipaddress

    settings.OUTBOUND_ALLOW = ["0.0.0.0/0", "::/0", "169.254.0.0/16"]
    pol = urlguard.policy()
    for ip in ("169.254.169.254", "fe80::1", "0.0.0.0"):
        assert "always refused" in pol.verdict(ipaddress.ip_address(ip))
    assert pol.verdict(ipaddress.ip_address("10.0.0.1")) is None


def test_the_most_specific_entry_wins(settings):
    import ipaddress

    settings.OUTBOUND_ALLOW = ["10.0.0.0/8"]
    settings.OUTBOUND_DENY = ["10.0.5.0/24", "93.184.216.0/24"]
    pol = urlguard.policy()
    assert pol.verdict(ipaddress.ip_address("10.0.4.1")) is None
    assert "BACKLINE_OUTBOUND_DENY" in pol.verdict(ipaddress.ip_address("10.0.5.1"))
    assert "BACKLINE_OUTBOUND_DENY" in pol.verdict(ipaddress.ip_address("93.184.216.34"))


def test_a_bad_cidr_names_the_setting(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.OUTBOUND_DENY = ["10.0.0.0/33"]
    with pytest.raises(ImproperlyConfigured, match="BACKLINE_OUTBOUND_DENY"):
        urlguard.policy()


@pytest.mark.parametrize(
    "url,use",
    [
        ("file:///etc/passwd", "catalog"),
        ("gopher://127.0.0.2:6379/_INFO", "webhook"),
        ("ssh://git@127.0.0.2/x.git", "webhook"),
        ("ftp://127.0.0.2/x", "scrape"),
        ("-oProxyCommand=x", "git"),
        ("http:///nohost", "catalog"),
        ("http://127.0.0.2:99999/", "catalog"),
    ],
)
def test_schemes_per_use_and_malformed_urls(strict, url, use):
    with pytest.raises(urlguard.Refused):
        urlguard.check_url(url, use=use)


def test_a_name_resolving_to_an_internal_address_is_refused(strict, monkeypatch):
    fake_dns(
        monkeypatch,
        {"meta.example": [["169.254.169.254"]], "mixed.example": [["93.184.216.34", "10.0.0.7"]]},
    )
    with pytest.raises(urlguard.Refused, match="169.254.169.254"):
        urlguard.check_url("http://meta.example/latest/meta-data/", use="webhook")
    with pytest.raises(urlguard.Refused, match="10.0.0.7"):  # any bad answer refuses
        urlguard.check_url("https://mixed.example/", use="catalog")


def test_save_time_check_is_a_400_naming_the_field(strict, monkeypatch):
    fake_dns(monkeypatch, {"meta.example": [["169.254.169.254"]]})
    with pytest.raises(Invalid) as info:
        urlguard.validate_url("http://meta.example/x", use="webhook", field="url")
    assert "url" in info.value.errors and "always refused" in info.value.errors["url"][0]
    urlguard.validate_url("http://does-not-resolve.invalid/x", use="webhook", field="url")


def test_dns_rebinding_connects_to_the_checked_address(strict, monkeypatch):
    """The first answer (allowed) is the one connected to; the second (internal) is never
    looked up, let alone used."""
    with serve("127.0.0.2") as (good, good_routes), serve("127.0.0.3") as (bad, bad_routes):
        good_routes.body("/catalog.yaml", "kind: Good\n")
        bad_routes.body("/catalog.yaml", "kind: Internal\n")
        port = int(good.rsplit(":", 1)[1])
        calls = fake_dns(monkeypatch, {"rebind.example": [["127.0.0.2"], ["127.0.0.3"]]})
        resp = urlguard.request(
            "GET",
            f"http://rebind.example:{port}/catalog.yaml",
            use="catalog",
            timeout=10,
            max_bytes=1024,
        )
        assert resp.status_code == 200 and resp.text == "kind: Good\n"
        assert calls == ["rebind.example"]
        assert good_routes.hits["/catalog.yaml"] == 1 and bad_routes.hits["/catalog.yaml"] == 0
        assert good_routes.headers["/catalog.yaml"]["Host"] == f"rebind.example:{port}"
        with pytest.raises(urlguard.Refused):  # the second answer is refused when looked up
            urlguard.check_url(f"http://rebind.example:{port}/", use="catalog")


def test_redirects_are_checked_at_every_hop(strict):
    with serve("127.0.0.2") as (good, routes), serve("127.0.0.3") as (internal, inner):
        inner.body("/secret", "internal")
        routes.redirect("/to-internal", f"{internal}/secret")
        routes.redirect("/to-metadata", "http://169.254.169.254/latest/meta-data/")
        routes.redirect("/to-file", "file:///etc/passwd")
        routes.redirect("/hop", "/ok")
        routes.body("/ok", "fine")
        for path in ("/to-internal", "/to-metadata", "/to-file"):
            with pytest.raises(urlguard.Refused):
                urlguard.request(
                    "GET", good + path, use="catalog", timeout=10, max_bytes=100, redirects=5
                )
        assert inner.hits["/secret"] == 0
        resp = urlguard.request(
            "GET", good + "/hop", use="catalog", timeout=10, max_bytes=100, redirects=5
        )
        assert resp.text == "fine" and resp.history == [good + "/hop"]
        # a POST never follows
        resp = urlguard.request(
            "POST", good + "/to-internal", use="webhook", timeout=10, max_bytes=100, body=b"{}"
        )
        assert resp.status_code == 302 and inner.hits["/secret"] == 0


def test_a_slow_drip_is_cut_at_the_total_deadline():
    with serve() as (base, routes):
        routes.drip("/slow", seconds=60, every=0.2)  # each read comes well within any timeout
        with pytest.raises(urlguard.Timeout, match="timed out after 1 s"):
            urlguard.request("GET", base + "/slow", use="catalog", timeout=1, max_bytes=2**20)
        # cut at the total deadline: the client hung up before the drip was over
        wait_until(lambda: "/slow" in routes.cut, what="the client to hang up")


def test_a_huge_body_is_refused_while_streaming():
    with serve() as (base, routes):
        routes.huge("/huge", total=300 * 2**20)
        routes.huge("/declared", total=300 * 2**20, declare=True)
        with pytest.raises(urlguard.TooLarge, match="larger than 10 MB"):
            urlguard.request("GET", base + "/huge", use="catalog", timeout=60, max_bytes=10 * 2**20)
        with pytest.raises(urlguard.TooLarge):
            urlguard.request(
                "GET", base + "/declared", use="catalog", timeout=60, max_bytes=10 * 2**20
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "/huge" not in routes.bodies:
            time.sleep(0.1)
        assert routes.bodies.get("/huge", 0) < 100 * 2**20  # the rest was never pulled


def test_credentials_in_the_url_become_basic_auth_and_stay_out_of_messages(strict):
    with serve("127.0.0.2") as (base, routes):
        routes.body("/x", "ok")
        host = base.removeprefix("http://")
        resp = urlguard.request(
            "GET", f"http://bot:s3cr3t@{host}/x", use="scrape", timeout=10, max_bytes=100
        )
        assert resp.status_code == 200
    with pytest.raises(urlguard.Refused) as info:
        urlguard.check_url("http://bot:s3cr3t@10.0.0.1/x", use="scrape")
    assert "s3cr3t" not in str(info.value)


@pytest.fixture
def tls_for_name(tmp_path):
    """A self-signed certificate for ``secure.example`` (server side) and a client context that
    trusts it (the guard's CA store is the boundary replaced here)."""
    import ssl
    import subprocess

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            key,
            "-out",
            cert,
            "-subj",
            "/CN=secure.example",
            "-addext",
            "subjectAltName=DNS:secure.example",
        ],
        check=True,
        capture_output=True,
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client


def test_https_to_a_pinned_address_keeps_sni_and_checks_the_certificate_name(
    strict, monkeypatch, tls_for_name
):
    server_ctx, client_ctx = tls_for_name
    monkeypatch.setattr(urlguard, "_tls", lambda: client_ctx)
    with serve("127.0.0.2", tls=server_ctx) as (base, routes):
        routes.body("/x", "over tls")
        port = int(base.rsplit(":", 1)[1])
        fake_dns(monkeypatch, {"secure.example": [["127.0.0.2"]], "other.example": [["127.0.0.2"]]})
        resp = urlguard.request(
            "GET", f"https://secure.example:{port}/x", use="catalog", timeout=10, max_bytes=100
        )
        assert resp.text == "over tls"
        assert routes.headers["/x"]["Host"] == f"secure.example:{port}"
        with pytest.raises(urlguard.FetchError, match="certificate|hostname"):
            urlguard.request(  # same address, another name: the certificate does not match
                "GET",
                f"https://other.example:{port}/x",
                use="catalog",
                timeout=10,
                max_bytes=100,
            )
