"""Demo releases for ``seed_demo`` (called from ``pipelines.demo``), driven by the `local`
driver against the demo fleet (``manage.py demo_fleet``, started by ``make run``).

Without anyone touching it, within a few minutes of ``make run``:

- ``playback-api 2.4.0`` to staging: 10 % of the traffic, a short bake, an analysis that passes
  (the canary serves as well as stable), then it **waits at a pause for a click** on Promote.
- ``search-api 7.1.0-rc1`` to staging: its canary process really serves ~35 % errors
  (``deploy_params``), the analysis fails and Backline **rolls it back by itself**.

Until the fleet is up, the driver cannot reach the canary and the controller retries every
few seconds. A little history (finished production releases) feeds the board and DORA.
Idempotent: nothing is created when the demo services already have releases.
"""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from infra.models import Workspace
from monitoring import haproxy_front
from portal.actors import Actor
from releases import scaling, services
from releases.models import Environment, Release, ReleaseStatus, ScaleSchedule
from squads.models import Service


def _scale() -> float:
    return settings.RELEASES_DEMO_TIME_SCALE or 1.0


def _analysis():
    s = _scale()
    return {
        "analysis": {
            "template": "golden-signals",
            "interval": 15 * s,
            "count": 4,
            # `make run` starts the fleet, scraper and releases together: tolerate the first
            # measurements seeing no canary traffic yet instead of pausing for a human
            "inconclusive_limit": 2,
            # the bake (30 s) plus one interval: the first measurement sees only the new
            # version's traffic, none from before the deploy
            "window": 45 * s,
            "min_requests": 5,
        }
    }


def demo_steps():
    s = _scale()
    steps = [{"set_weight": 10}, {"pause": {"duration": 45 * s}}, _analysis(), {"pause": {}}]
    for w in (25, 50):
        steps += [{"set_weight": w}, _analysis(), {"pause": {}}]
    return [*steps, {"set_weight": 100}, _analysis()]


DEMO = (
    # slug, version, deploy params (the canary's behaviour)
    ("playback-api", "2.4.0", {"error_rate": 0.005, "latency_ms": 35}),
    ("search-api", "7.1.0-rc1", {"error_rate": 0.35, "latency_ms": 60}),
)
HISTORY = (
    # slug, version, status, days ago, minutes it took
    ("playback-api", "2.3.1", "succeeded", 2, 38),
    ("playback-api", "2.3.0", "failed", 3, 9),
    ("search-api", "7.0.4", "succeeded", 1, 52),
    ("home-feed-api", "5.12.0", "succeeded", 4, 44),
    ("home-feed-api", "5.11.2", "aborted", 6, 14),
)


EDGE_STEPS = [
    {"set_weight": 10},
    {"pause": {}},
    {"set_weight": 50},
    {"pause": {}},
    {"set_weight": 100},
]


def seed_edge(stdout=None) -> Environment:
    """``edge``: the demo fleet's HAProxy (``monitoring.haproxy_front``) in front of
    home-feed-api; its canary waits at 10 % of real HAProxy traffic for a Promote."""
    env, _ = Environment.objects.get_or_create(
        name="edge",
        defaults={
            "title": "Edge (HAProxy)",
            "order": 5,
            "driver": "haproxy",
            "driver_config": {
                "socket": haproxy_front.socket_path(settings.VAR_DIR),
                "backend": "{service}",
                "stable_server": "stable",
                "canary_server": "canary",
                "servers": ["stable", "canary"],
            },
        },
    )
    return env


CAPACITY_TF = """variable "replicas" {
  type    = number
  default = 3
}

# stands for the autoscaling group / node pool size of payments-gateway
resource "terraform_data" "capacity" {
  input = var.replicas
}

output "replicas" {
  value = terraform_data.capacity.output
}
"""
SCALED = "payments-gateway"


def seed_scaling(stdout=None) -> None:
    """payments-gateway scales through its Terraform workspace: a daily peak window that opens
    a few minutes after the first ``make run``, so the schedule visibly applies (plan → apply)."""
    svc = Service.objects.filter(slug=SCALED).select_related("owner").first()
    production = Environment.objects.filter(name="production").first()
    if svc is None or production is None:
        return
    ws, _ = Workspace.objects.get_or_create(
        slug="payments-capacity",
        defaults={
            "name": "Payments capacity",
            "owner": svc.owner,
            "files": {"main.tf": CAPACITY_TF},
            "auto_apply": True,
            "description": "Replica count of payments-gateway, set by its peak-hour schedule.",
        },
    )
    ws.services.add(svc)  # the demo catalog gives it the annotation naming this variable
    if ScaleSchedule.objects.filter(service=svc).exists():
        return
    opens = timezone.now() + timedelta(minutes=3)
    scaling.create_schedule(
        svc,
        actor=Actor.system("seed_demo", door="command"),
        environment=production,
        name="demo peak",
        cron=f"{opens.minute} {opens.hour} * * *",
        duration_minutes=20,
        timezone="UTC",
        replicas=8,
        base_replicas=3,
    )
    if stdout is not None:
        stdout.write(f"  scaling: {SCALED} peak window at {opens:%H:%M} UTC (8 replicas, else 3)")


def _seed_history(svcs, production) -> None:
    """Finished releases in production over the past weeks (DORA figures, release list)."""
    now = timezone.now()
    steps = [{"set_weight": w} for w in (10, 25, 50, 100)]
    for slug, version, status, days, minutes in HISTORY:
        if slug not in svcs:
            continue
        started = now - timedelta(days=days)
        Release.objects.create(
            service=svcs[slug],
            environment=production,
            version=version,
            strategy=[*steps[:1], {"analysis": {"template": "golden-signals"}}, *steps[1:]],
            status=status,
            step_index=5 if status == ReleaseStatus.SUCCEEDED else 1,
            weight=100 if status == ReleaseStatus.SUCCEEDED else 0,
            desired_weight=100 if status == ReleaseStatus.SUCCEEDED else 0,
            message={
                "failed": "analysis failed: error-ratio failed",
                "aborted": "aborted by a squad member",
            }.get(status, "all steps done"),
            started_by="pipeline",
            trigger="pipeline",
            created_at=started,
            started_at=started,
            finished_at=started + timedelta(minutes=minutes),
        )


def seed(stdout=None):
    edge = seed_edge(stdout)
    seed_scaling(stdout)
    staging = Environment.objects.filter(name="staging").first()
    production = Environment.objects.filter(name="production").first()
    if staging is None or production is None:
        return
    slugs = {d[0] for d in DEMO} | {h[0] for h in HISTORY}
    svcs = {s.slug: s for s in Service.objects.filter(slug__in=slugs).select_related("owner")}
    if Release.objects.filter(service__slug__in=slugs).exists():
        return
    _seed_history(svcs, production)
    actor = Actor.system("seed_demo", door="command")
    for slug, version, params in DEMO:
        if slug not in svcs:
            continue
        r = services.create_release(
            svcs[slug],
            actor=actor,
            environment=staging,
            version=version,
            steps=demo_steps(),
            trigger="demo",
            deploy_params=params,
        )
        if stdout is not None:
            stdout.write(f"  releases: {slug} {version} → staging ({r.status})")
    if haproxy_front.FRONTED in svcs:
        r = services.create_release(
            svcs[haproxy_front.FRONTED],
            actor=actor,
            environment=edge,
            version="5.13.0",
            steps=EDGE_STEPS,
            trigger="demo",
        )
        if stdout is not None:
            stdout.write(f"  releases: {haproxy_front.FRONTED} 5.13.0 → edge, through HAProxy")
