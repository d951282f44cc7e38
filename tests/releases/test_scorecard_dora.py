"""The scorecard rule releases enable, and DORA counting releases as deployments."""

from datetime import timedelta

from django.utils import timezone

from monitoring import dora
from releases.models import Environment, Release
from squads.scorecards import evaluate_one
from tests.factories import ServiceFactory


def _rule(service):
    card = evaluate_one(service)
    return next(r.passed for r in card.results if r.rule.key == "production_canary")


def _release(service, env, steps, status="succeeded", days=1, minutes=30):
    end = timezone.now() - timedelta(days=days)
    return Release.objects.create(
        service=service,
        environment=env,
        version=f"v{days}{status}",
        strategy=steps,
        status=status,
        created_at=end - timedelta(minutes=minutes),
        finished_at=end,
    )


def test_production_canary_rule(squad):
    prod = Environment.objects.get_or_create(name="production", defaults={"production": True})[0]
    prod.production = True
    prod.save()
    staging = Environment.objects.get_or_create(name="staging")[0]
    svc = ServiceFactory(slug="svc-a", owner=squad)
    assert _rule(svc) is None  # no production release: does not apply
    _release(svc, staging, [{"set_weight": 100}])
    assert _rule(svc) is None
    _release(svc, prod, [{"set_weight": 100}], days=2)
    assert _rule(svc) is False  # straight to 100 %, no analysis
    _release(svc, prod, [{"set_weight": 10}, {"analysis": {"template": "x"}}, {"set_weight": 100}])
    assert _rule(svc) is True


def test_dora_counts_production_releases(squad):
    prod = Environment.objects.get_or_create(name="production", defaults={"production": True})[0]
    prod.production = True
    prod.save()
    svc = ServiceFactory(slug="svc-b", owner=squad)
    for days, status in ((1, "succeeded"), (2, "succeeded"), (3, "failed"), (4, "aborted")):
        _release(svc, prod, [{"set_weight": 100}], status=status, days=days)
    rep = dora.report([svc], days=30)
    assert rep["deployment_source"] == "deployments_from_releases"
    m = rep["metrics"]
    assert m["change_failure_rate"]["value"] == 0.5
    assert abs(m["lead_time"]["value"] - 1800) < 5
