"""`manage.py demo_fleet` runs real instrumented processes, registers them in the catalog, and
stops every child on SIGTERM."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

from monitoring.fleet import free_port
from squads.models import Service
from tests.conftest import ROOT, _worker_env
from tests.factories import ServiceFactory


@pytest.mark.django_db(transaction=True)
def test_demo_fleet_command_registers_targets_and_stops_cleanly(squad):
    ServiceFactory(slug="playback-api", owner=squad)
    ServiceFactory(slug="search-api", owner=squad)
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "demo_fleet",
            "--services",
            "playback-api,search-api",
            "--base-port",
            str(port),
            "--rps",
            "20",
        ],
        cwd=ROOT,
        env={**_worker_env(), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    lines = []
    reader = threading.Thread(
        target=lambda: lines.extend(iter(proc.stdout.readline, b"")), daemon=True
    )
    reader.start()
    try:
        deadline = time.monotonic() + 30
        urls, other = [], []
        while time.monotonic() < deadline and (len(urls) < 2 or len(other) < 2):
            # the command registers one service after the other: wait for both
            urls = Service.objects.get(slug="playback-api").metrics_urls
            other = Service.objects.get(slug="search-api").metrics_urls
            time.sleep(0.2)
        assert {u["track"] for u in urls} == {"stable", "canary"}
        assert len(other) == 2
        # the traffic generator is hitting them: counters labelled by service and track appear
        deadline = time.monotonic() + 15
        text = ""
        while time.monotonic() < deadline and "http_requests_total{" not in text:
            text = requests.get(urls[0]["url"], timeout=2).text
            time.sleep(0.2)
        assert 'service="playback-api"' in text and 'track="stable"' in text
        assert "http_request_duration_seconds_bucket" in text
        # another process moves all traffic to canary and makes it fail
        from monitoring.fleet import publish_weight, set_behaviour_at

        canary = next(u["url"] for u in urls if u["track"] == "canary")
        set_behaviour_at(canary, error_rate=1.0)
        publish_weight("playback-api", 100)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and b"playback-api: canary weight 100 %\n" not in lines:
            time.sleep(0.2)
        assert b"playback-api: canary weight 100 %\n" in lines
        deadline = time.monotonic() + 15
        while (
            time.monotonic() < deadline and 'code="500"' not in requests.get(canary, timeout=2).text
        ):
            time.sleep(0.3)
        assert (
            'http_requests_total{code="500",service="playback-api",track="canary"}'
            in requests.get(canary, timeout=2).text
        )
        children = subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
        ).stdout.split()
        assert len(children) == 4  # stable + canary of two services
    finally:
        from django.conf import settings

        from monitoring.fleet import WEIGHTS_SUBDIR

        (settings.VAR_DIR / WEIGHTS_SUBDIR / "playback-api").unlink(missing_ok=True)
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(20)
        reader.join(5)
    out = b"".join(lines)
    assert proc.returncode == 0, out.decode()
    assert b"demo fleet stopped" in out
    for u in urls:
        with pytest.raises(requests.ConnectionError):
            requests.get(u["url"], timeout=1)
    for pid in children:
        assert not os.path.exists(f"/proc/{pid}"), f"child {pid} survived"
