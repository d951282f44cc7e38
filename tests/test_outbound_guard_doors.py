"""The findings of issue 14 "Outbound requests go anywhere", door by door: alert channels,
event subscriptions, webhook deliveries, ``metrics_urls`` scraping, git remotes of pipelines
and Terraform workspaces. Refused at save with a 400 naming the field, and at use with a clear
error (the internal server is never reached); a remote's error body is never stored or shown.

The internal server is a real HTTP server on 127.0.0.3; the guard here allows only 127.0.0.2
(the "public" side), as a production installation would allow none."""

import socket

import pytest

from metrics.models import ScrapeTarget
from metrics.scrape import scrape_service
from portal import outbound
from portal.gitsource import SourceError, remote_for
from portal.models import DeliveryAttempt
from squads.models import Service
from tests.conftest import client_for
from tests.factories import ServiceFactory
from tests.outbound_servers import serve


@pytest.fixture
def strict(settings):
    settings.OUTBOUND_ALLOW = ["127.0.0.2/32"]
    settings.OUTBOUND_DENY = []
    return settings


@pytest.fixture
def internal():
    with serve("127.0.0.3") as (base, routes):
        routes.body("/hook", "ok")
        routes.body("/metrics", "up 1\n")
        yield base, routes


METADATA = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"


def test_alert_channel_to_internal_or_metadata_is_a_400_naming_url(strict, alice, squad, internal):
    c = client_for(alice)
    for url in (METADATA, f"{internal[0]}/hook", "http://[::ffff:169.254.169.254]/"):
        resp = c.post(
            "/api/v1/alert-channels/",
            {"squad": "playback", "name": "pager", "kind": "webhook", "url": url},
            format="json",
        )
        assert resp.status_code == 400, resp.content
        body = resp.json()
        assert "url" in body["errors"] and "outbound URL guard" in body["errors"]["url"][0]
    assert not squad.alert_channels.exists()


def test_event_subscription_to_internal_is_a_400_naming_url(strict, alice, internal):
    resp = client_for(alice).post(
        "/api/v1/event-subscriptions/",
        {
            "squad": "playback",
            "name": "bot",
            "url": f"{internal[0]}/hook",
            "secret": "topsecret1",
            "event_types": ["catalog.*"],
        },
        format="json",
    )
    assert resp.status_code == 400 and "url" in resp.json()["errors"], resp.content


def test_a_delivery_to_an_internal_url_is_refused_at_use(strict, internal, db):
    base, routes = internal
    delivery = outbound.deliver(
        "event", f"{base}/hook", {"x": 1}, event_type="test.ping", max_attempts=1, send_now=True
    )
    delivery.refresh_from_db()
    assert delivery.status == "failed" and "outbound URL guard" in delivery.last_error
    assert routes.hits["/hook"] == 0


def test_a_remote_error_body_is_never_stored_or_shown(db, alice, bob):
    secret = "INTERNAL-STACKTRACE-db-password=hunter2"
    with serve() as (base, routes):
        routes.body("/hook", secret, status=500)
        delivery = outbound.deliver(
            "alert",
            f"{base}/hook",
            {"x": 1},
            event_type="alert.firing",
            max_attempts=1,
            send_now=True,
        )
    delivery.refresh_from_db()
    assert delivery.last_error == "HTTP 500" and delivery.last_status_code == 500
    assert secret not in DeliveryAttempt.objects.get(delivery=delivery).error
    page = client_for(bob).get("/alerts/")
    assert page.status_code == 200 and "hunter2" not in page.content.decode()


def test_metrics_urls_to_internal_addresses_are_a_400_naming_the_entry(
    strict, alice, squad, internal
):
    ServiceFactory(slug="playback-api", owner=squad)
    c = client_for(alice)
    resp = c.patch(
        "/api/v1/services/playback-api/",
        {"metrics_urls": ["http://127.0.0.2:9/metrics", METADATA]},
        format="json",
    )
    assert resp.status_code == 400, resp.content
    assert "metrics_urls[1]" in resp.json()["errors"]
    assert Service.objects.get(slug="playback-api").metrics_urls == []


def test_scraping_an_internal_target_stored_before_is_refused_at_use(strict, internal, squad):
    base, routes = internal
    svc = ServiceFactory(slug="legacy", owner=squad, metrics_urls=[f"{base}/metrics"])
    assert scrape_service(svc) == 0
    target = ScrapeTarget.objects.get(service=svc)
    assert target.health == "down" and "outbound URL guard" in target.last_error
    assert routes.hits["/metrics"] == 0


def test_a_scrape_redirected_to_an_internal_address_is_refused(strict, internal, squad):
    base, routes = internal
    with serve("127.0.0.2") as (public, front):
        front.redirect("/metrics", f"{base}/metrics")
        svc = ServiceFactory(slug="bouncer", owner=squad, metrics_urls=[f"{public}/metrics"])
        assert scrape_service(svc) == 0
    assert "outbound URL guard" in ScrapeTarget.objects.get(service=svc).last_error
    assert routes.hits["/metrics"] == 0


# --- git remotes --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url,why",
    [
        ("ext::sh -c touch% /tmp/pwned", "remote helpers"),
        ("--upload-pack=touch /tmp/pwned", "not"),
        ("http://169.254.169.254/repo.git", "always refused"),
        ("http://10.0.0.8/internal.git", "private"),
        ("relative/../path", "absolute path"),
    ],
)
def test_repository_urls_the_guard_refuses_are_a_400(strict, alice, squad, url, why):
    ServiceFactory(slug="playback-api", owner=squad)
    resp = client_for(alice).patch(
        "/api/v1/services/playback-api/", {"repository_url": url}, format="json"
    )
    assert resp.status_code == 400, resp.content
    assert why in resp.json()["errors"]["repository_url"][0]


def test_local_remotes_only_inside_allowed_folders_and_never_backlines_caches(settings, tmp_path):
    repo = tmp_path / "repos" / "a"
    repo.mkdir(parents=True)
    settings.WORKSPACE_ROOT = tmp_path / "workspaces"
    cache = settings.WORKSPACE_ROOT / "pipelines" / "cache" / "7-abc.git"
    cache.mkdir(parents=True)
    settings.OUTBOUND_ALLOW = []
    with pytest.raises(SourceError, match="local repositories"):
        remote_for(str(repo))
    settings.OUTBOUND_ALLOW = [f"file:{tmp_path}"]
    remote = remote_for(f"file://{repo}")
    assert "protocol.file.allow=always" in remote.config
    assert remote.config[:2] == ("-c", "protocol.allow=never")
    with pytest.raises(SourceError, match="local repositories"):
        remote_for(str(cache))  # another service's cache, even inside an allowed folder
    with pytest.raises(SourceError, match="local repositories"):
        remote_for(f"{tmp_path}/repos/../workspaces/pipelines/cache/7-abc.git")


def test_git_is_pinned_to_the_checked_address(strict, monkeypatch):
    real = socket.getaddrinfo

    def fake(host, port, *a, **kw):
        if host == "git.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.2", port))]
        return real(host, port, *a, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    remote = remote_for("https://git.example/org/repo.git")
    assert "http.curloptResolve=git.example:443:127.0.0.2" in remote.config
    assert "http.followRedirects=false" in remote.config
    assert "protocol.file.allow=always" not in remote.config


def test_a_pipeline_run_with_a_refused_remote_fails_saying_why(strict, squad, settings, tmp_path):
    from pipelines import runner
    from pipelines.models import PipelineRun

    settings.WORKSPACE_ROOT = tmp_path / "ws"
    svc = ServiceFactory(slug="sneaky", owner=squad, repository_url="http://10.0.0.8/x.git")
    run = PipelineRun.objects.create(service=svc, number=1, ref="main")
    runner.execute(run.pk)
    run.refresh_from_db()
    assert run.status == "failed" and "outbound URL guard" in run.error, run.error


def test_a_terraform_workspace_with_an_internal_remote_is_a_400(strict, squad, make_token):
    from tests.conftest import token_client

    c = token_client(make_token(squad, ["infra:apply"]))
    resp = c.post(
        "/api/v1/workspaces/",
        {
            "slug": "net",
            "owner": "playback",
            "source": "git",
            "repository_url": "http://192.168.1.10/infra.git",
            "ref": "main",
        },
        format="json",
    )
    assert resp.status_code == 400 and "repository_url" in resp.json()["errors"], resp.content


def test_git_clones_over_http_through_the_pin_alone(strict, squad, settings, tmp_path, monkeypatch):
    """``git.example`` exists only in the guard's resolver: git reaches the dumb-HTTP server
    on 127.0.0.2 because it is pinned there (``http.curloptResolve``), not by its own DNS."""
    import functools
    import http.server
    import subprocess
    import threading

    from pipelines.models import PipelineRun
    from portal.gitsource import Checkout

    settings.WORKSPACE_ROOT = tmp_path / "ws"
    work, bare = tmp_path / "work", tmp_path / "srv" / "repo.git"
    git = functools.partial(subprocess.run, check=True, capture_output=True)
    git(["git", "init", "-q", "-b", "main", str(work)])
    (work / "README").write_text("pinned\n")
    git(["git", "-C", str(work), "add", "README"])
    git(
        [
            "git",
            "-C",
            str(work),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@x",
            "commit",
            "-qm",
            "one",
        ]
    )
    git(["git", "clone", "-q", "--bare", str(work), str(bare)])
    git(["git", "-C", str(bare), "update-server-info"])
    handler = functools.partial(
        type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None}),
        directory=str(tmp_path / "srv"),
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.2", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    real = socket.getaddrinfo

    def fake(host, port, *a, **kw):
        if host == "git.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.2", port))]
        return real(host, port, *a, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    try:
        url = f"http://git.example:{server.server_address[1]}/repo.git"
        svc = ServiceFactory(slug="pinned", owner=squad, repository_url=url)
        run = PipelineRun.objects.create(service=svc, number=1, ref="main")
        out = []
        checkout = Checkout(
            run, on_output=out.append, should_cancel=lambda: False, on_heartbeat=lambda: None
        )
        workdir, sha = checkout.prepare()
        assert (workdir / "README").read_text() == "pinned\n" and len(sha) == 40
        assert "curloptResolve" not in "".join(out)  # the log shows the fetch, not the pin
        checkout.cleanup()
    finally:
        server.shutdown()
        server.server_close()


def test_a_terraform_run_with_a_refused_remote_errors_saying_why(
    strict, squad, alice, settings, tmp_path
):
    from infra import runner, services
    from infra.models import RunStatus, Workspace
    from portal.actors import Actor

    settings.WORKSPACE_ROOT = tmp_path / "ws"
    ws = Workspace.objects.create(  # stored before the guard existed
        slug="legacy",
        name="legacy",
        owner=squad,
        source=Workspace.Source.GIT,
        repository_url="http://169.254.169.254/infra.git",
        ref="main",
    )
    run = services.queue_run(ws, actor=Actor(user=alice))
    runner.execute_plan(run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.ERRORED and "outbound URL guard" in run.error, run.error


@pytest.mark.parametrize("url", ["ssh://git@git.example/org/repo.git", "git@git.example:org/repo"])
def test_git_over_ssh_is_pinned_to_the_checked_address(strict, monkeypatch, tmp_path, url):
    """git runs ssh with ``HostName`` set to the address the guard checked (the host key still
    verified under the name): a second DNS answer cannot send it elsewhere. A recording ``ssh``
    on PATH stands in for the network; git itself builds the command line."""
    import subprocess

    real = socket.getaddrinfo

    def fake(host, port, *a, **kw):
        if host == "git.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.2", port))]
        return real(host, port, *a, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    remote = remote_for(url)
    bin_dir, argv_file = tmp_path / "bin", tmp_path / "argv"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {argv_file}\nexit 128\n')
    (bin_dir / "ssh").chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1"}
    res = subprocess.run(
        ["git", *remote.config, "ls-remote", "--", remote.url],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert res.returncode != 0
    argv = argv_file.read_text().splitlines()
    assert "HostName=127.0.0.2" in argv and "HostKeyAlias=git.example" in argv, argv
    assert "ProxyCommand=none" in argv and "BatchMode=yes" in argv, argv
    assert any(a.endswith("git.example") for a in argv), argv  # the name, for the host key
