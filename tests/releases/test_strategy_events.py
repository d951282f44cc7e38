"""Strategy resolution and validation, analysis verdicts, outbound events, admin pages."""

import pytest
from django.core.exceptions import ValidationError

from portal.actors import Actor
from portal.models import EventDelivery, EventSubscription
from releases import analysis, services
from releases.models import Environment, StrategyOverride
from releases.strategy import default_steps, resolve, validate
from tests.conftest import client_for
from tests.releases.conftest import PAUSING, settle


def test_resolution_order(playback_api, local_env):
    prod = Environment.objects.get_or_create(name="production")[0]
    assert resolve(playback_api, local_env) == (default_steps(), "default")
    local_env.strategy = [{"set_weight": 50}, {"set_weight": 100}]
    local_env.save()
    assert resolve(playback_api, local_env)[1] == "environment"
    StrategyOverride.objects.create(service=playback_api, steps=[{"set_weight": 30}])
    assert resolve(playback_api, local_env) == ([{"set_weight": 30}], "service")
    StrategyOverride.objects.create(
        service=playback_api, environment=local_env, steps=[{"set_weight": 20}, "pause"]
    )
    assert resolve(playback_api, local_env) == (
        [{"set_weight": 20}, {"pause": {}}],
        "service+environment",
    )
    assert resolve(playback_api, prod)[1] == "service"
    assert resolve(playback_api, prod, [{"pause": 5}])[0] == [{"pause": {"duration": 5.0}}]


@pytest.mark.parametrize(
    "steps, message",
    [
        ([], "non-empty"),
        ([{"set_weight": 101}], "step 1: set_weight"),
        ([{"set_weight": 10}, {"jump": 1}], "step 2: unknown step"),
        ([{"analysis": {"template": "x", "bogus": 1}}], "unknown analysis field"),
        ([{"pause": {"duration": -1}}], "duration"),
    ],
)
def test_validation(steps, message):
    with pytest.raises(ValidationError, match=message):
        validate(steps)


def test_metric_verdicts():
    m = {"count": 3, "failure_limit": 0, "inconclusive_limit": 0, "consecutive_error_limit": 4}
    assert analysis.metric_verdict(m, ["successful"]) == "running"
    assert analysis.metric_verdict(m, ["successful"] * 3) == "successful"
    assert analysis.metric_verdict(m, ["successful", "failed"]) == "failed"
    assert analysis.metric_verdict(m, ["inconclusive"]) == "inconclusive"
    assert analysis.metric_verdict(m, ["error"] * 4) == "running"
    assert analysis.metric_verdict(m, ["error"] * 5) == "error"
    assert analysis.metric_verdict({**m, "failure_limit": 1}, ["failed"]) == "running"
    assert analysis.run_verdict(["successful", "failed"]) == "failed"
    assert analysis.run_verdict(["successful", "inconclusive"]) == "inconclusive"
    assert analysis.run_verdict(["successful", "running"]) == "running"


def test_outbound_events(paused_release, squad, alice):
    EventSubscription.objects.create(
        squad=squad, name="chat", url="http://127.0.0.1:9/x", secret="s", event_types=["release.*"]
    )
    r = paused_release()
    settle(services.promote_release(r, actor=Actor(user=alice), step=r.step_index))
    services.abort_release(r, actor=Actor(user=alice))
    events = EventDelivery.objects.filter(kind="event").order_by("id")  # not the deploy calls
    types = list(events.values_list("event_type", flat=True))
    assert types == [
        "release.started",
        "release.paused",
        "release.promoted",
        "release.paused",
        "release.aborted",
    ]
    payload = events.last().payload["data"]
    assert payload["service"] == "playback-api" and payload["status"] == "aborted"


def test_admin_pages(admin_user, paused_release):
    r = paused_release(steps=PAUSING)
    c = client_for(admin_user)
    for url in (
        "/admin/releases/environment/",
        "/admin/releases/release/",
        f"/admin/releases/release/{r.pk}/change/",
        "/admin/releases/analysistemplate/",
        "/admin/releases/strategyoverride/add/",
    ):
        assert c.get(url).status_code == 200, url
