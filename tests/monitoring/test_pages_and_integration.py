"""Hooks into the rest of Backline: HTTP SD, /metrics, status board, service/squad panels,
dashboards pages, demo seed."""

from rest_framework.test import APIClient

from monitoring.models import Alert, AlertRule, NotificationChannel
from tests.conftest import client_for, token_client
from tests.factories import ServiceFactory


def test_prometheus_sd_lists_catalog_targets(db, squad, make_token, settings):
    settings.OUTBOUND_ALLOW = ["10.0.0.0/8"]  # this installation's services are on 10/8
    ServiceFactory(
        slug="svc-meta",
        owner=squad,
        metrics_urls=["http://169.254.169.254/latest/", "http://192.168.1.1/metrics"],
    )
    ServiceFactory(
        slug="svc-a",
        owner=squad,
        tier=1,
        metrics_urls=[
            {"url": "http://10.0.0.5:9100/metrics", "track": "canary"},
            "https://svc-a.internal/custom/prom?format=text",
        ],
    )
    ServiceFactory(slug="svc-b", owner=squad, metrics_urls=[])
    assert APIClient().get("/api/v1/prometheus/sd").status_code == 401
    r = token_client(make_token(squad, [])).get("/api/v1/prometheus/sd")
    assert r.status_code == 200
    groups = r.json()
    assert len(groups) == 2
    first, second = groups
    assert first["targets"] == ["10.0.0.5:9100"]
    assert first["labels"] == {
        "__scheme__": "http",
        "__metrics_path__": "/metrics",
        "service": "svc-a",
        "squad": "playback",
        "tribe": "audio",
        "tier": "1",
        "lifecycle": "production",
        "track": "canary",
    }
    assert second["targets"] == ["svc-a.internal"]
    assert second["labels"]["__scheme__"] == "https"
    assert second["labels"]["__metrics_path__"] == "/custom/prom"
    assert second["labels"]["__param_format"] == "text"
    assert "track" not in second["labels"]  # taken from the exposition's own label
    # what the outbound URL guard refuses is not handed to Prometheus either
    assert all(g["labels"]["service"] != "svc-meta" for g in groups)


def test_own_metrics_include_database_figures(db, squad):
    svc = ServiceFactory(slug="svc-m", owner=squad)
    rule = AlertRule.objects.create(service=svc, name="r", signal="p95", threshold=1)
    Alert.objects.create(rule=rule, service=svc, state="firing", severity="critical")
    body = APIClient().get("/metrics").content.decode()
    assert 'backline_alerts{severity="critical",state="firing"} 1.0' in body
    assert "backline_builtin_series 0.0" in body
    assert (
        "backline_pipeline_runs_finished_total" in body or "backline_pipeline_run_seconds" in body
    )
    assert "backline_http_request_duration_seconds" in body
    assert "# TYPE backline_release_status_changes_total counter" in body


def test_board_panels_and_pages(db, squad, alice, bob):
    svc = ServiceFactory(slug="svc-p", name="Svc P", owner=squad, metrics_urls=[])
    rule = AlertRule.objects.create(service=svc, name="Latency high", signal="p95", threshold=1)
    Alert.objects.create(rule=rule, service=svc, state="firing", severity="warning")
    c = client_for(alice)
    home = c.get("/").content.decode()
    assert 'id="board-alerts"' in home and "Latency high" in home
    assert "Latency high" in c.get("/alerts/board").content.decode()
    service_page = c.get("/services/svc-p/").content.decode()
    assert 'id="monitoring-service-panel"' in service_page
    panel = c.get("/dashboards/services/svc-p/panel").content.decode()
    assert "Latency high" in panel and "No metrics endpoints registered" in panel
    squad_page = c.get("/squads/playback/").content.decode()
    assert 'id="monitoring-squad-panel"' in squad_page
    squad_panel = c.get("/dashboards/squads/playback/panel").content.decode()
    assert "Svc P" in squad_panel and "no metrics endpoints" in squad_panel
    index = c.get("/dashboards/").content.decode()
    assert "Svc P" in index and "1 firing" in index
    assert c.get("/dashboards/services/svc-p/?range=2w").status_code == 400
    assert c.get("/dashboards/services/svc-p/?track=blue").status_code == 400
    dash = c.get("/dashboards/services/svc-p/?range=24h&track=canary")
    assert dash.status_code == 200 and b"Add rule" in dash.content  # alice may write
    assert b"Add rule" not in client_for(bob).get("/dashboards/services/svc-p/").content


def test_rule_and_channel_forms(db, squad, alice, bob):
    ServiceFactory(slug="svc-f", owner=squad)
    c = client_for(alice)
    r = c.post(
        "/dashboards/services/svc-f/rules",
        {
            "name": "Errors",
            "signal": "error_ratio",
            "query": "",
            "track": "stable",
            "comparison": ">",
            "threshold": "0.05",
            "window_seconds": "60",
            "for_seconds": "30",
            "severity": "critical",
        },
    )
    assert r.status_code == 302
    rule = AlertRule.objects.get(name="Errors")
    # bob is in another squad: refused, nothing deleted
    client_for(bob).post(f"/alerts/rules/{rule.pk}/delete")
    assert AlertRule.objects.filter(pk=rule.pk).exists()
    # a rule with neither signal nor query is refused with a message
    r = c.post(
        "/dashboards/services/svc-f/rules",
        {
            "name": "x",
            "threshold": "1",
            "track": "stable",
            "comparison": ">",
            "window_seconds": "60",
            "for_seconds": "0",
            "severity": "info",
        },
        follow=True,
    )
    assert "Choose a signal or write a query" in r.content.decode()
    r = c.post(
        "/alerts/channels/",
        {
            "squad": "playback",
            "name": "ops",
            "kind": "webhook",
            "url": "http://127.0.0.1:9/x",
            "secret": "s",
            "min_severity": "warning",
        },
    )
    assert r.status_code == 302 and NotificationChannel.objects.filter(name="ops").exists()
    c.post(f"/alerts/rules/{rule.pk}/delete")
    assert not AlertRule.objects.filter(pk=rule.pk).exists()


def test_demo_seed_is_idempotent(db, squad):
    from monitoring import demo

    ServiceFactory(slug="search-api", owner=squad)
    ServiceFactory(slug="playback-api", owner=squad)
    demo.seed()
    rules, alerts = AlertRule.objects.count(), Alert.objects.count()
    assert rules == 3 and alerts == 2
    demo.seed()
    assert (AlertRule.objects.count(), Alert.objects.count()) == (rules, alerts)


def test_scorecard_rules(db, squad):
    from squads.scorecards import evaluate

    good = ServiceFactory(slug="good", owner=squad, metrics_urls=["http://127.0.0.1:1/metrics"])
    bad = ServiceFactory(slug="bad", owner=squad, metrics_urls=[])
    rule = AlertRule.objects.create(service=good, name="r", signal="p95", threshold=1)
    cards = evaluate([good, bad])

    def result(svc, key):
        return next(r.passed for r in cards[svc.pk].results if r.rule.key == key)

    assert result(good, "has_metrics") and result(good, "has_alert_rules")
    assert result(bad, "has_metrics") is False and result(bad, "has_alert_rules") is False
    assert result(good, "no_critical_alert")
    Alert.objects.create(rule=rule, service=good, state="firing", severity="critical")
    assert (
        next(
            r.passed for r in evaluate([good])[good.pk].results if r.rule.key == "no_critical_alert"
        )
        is False
    )
