"""Scaling (issue 17): by hand and API through the deploy driver (real HAProxy servers enabled
and put in maintenance; Kubernetes' scale subresource on the local API server), through the
service's Terraform workspace (the machine's real Terraform, a ``terraform_data`` holding the
replica count), and peak-hour schedules evaluated like beat does."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from infra import runner
from infra.models import RunStatus, TerraformRun, Workspace
from monitoring.dashboards import service_dashboard
from portal.actors import Actor
from portal.models import AuditEvent, EventDelivery, EventSubscription
from releases import scaling
from releases.haproxy import RuntimeAPI
from releases.models import Environment, ScaleEvent, ScaleSchedule
from releases.runtime import service_runtime
from tests.conftest import client_for, token_client
from tests.factories import ServiceFactory
from tests.infra.conftest import ws_root  # noqa: F401 - the workspace root fixture
from tests.k8s_api import FakeKubernetes, deployment, pod
from tests.releases.test_haproxy import HAProxy, Track

TF111 = "/usr/local/bin/terraform"


@pytest.fixture
def kube(tmp_path):
    kube = FakeKubernetes()
    kube.kubeconfig_path = kube.kubeconfig(tmp_path / "kubeconfig")
    kube.put("apis/apps/v1", "apps", "deployments", deployment("playback-api", "reg/p:1", 4))
    kube.put("apis/apps/v1", "apps", "deployments", deployment("playback-api-canary", "reg/p:1", 0))
    for i in range(2):
        kube.put(
            "api/v1",
            "apps",
            "pods",
            pod(f"playback-api-7d9f-{i}", "playback-api", "reg/p:1", restarts=i),
        )
    yield kube
    kube.stop()


@pytest.fixture
def k8s_env(db, kube):
    return Environment.objects.create(
        name="k8s",
        driver="kubernetes",
        driver_config={"kubeconfig": kube.kubeconfig_path, "namespace": "apps"},
    )


@pytest.fixture
def service(squad):
    return ServiceFactory(
        slug="playback-api",
        owner=squad,
        annotations={"backline.io/min-replicas": "2", "backline.io/max-replicas": "12"},
    )


def test_scale_through_the_api(kube, k8s_env, service, alice, squad):
    EventSubscription.objects.create(
        squad=squad, name="ops", url="http://127.0.0.1:9/x", secret="s", event_types=["service.*"]
    )
    client = client_for(alice)
    r = client.post(
        f"/api/v1/services/{service.slug}/scale",
        {"environment": "k8s", "replicas": 6},
        format="json",
    )
    assert r.status_code == 201, r.content
    assert r.json()["status"] == "applied" and r.json()["via"] == "kubernetes"
    scale = kube.writes()[-1]
    assert scale == {
        "method": "PATCH",
        "path": "/apis/apps/v1/namespaces/apps/deployments/playback-api/scale",
        "content_type": "application/merge-patch+json",
        "body": {"spec": {"replicas": 6}},
    }
    assert kube.get("apis/apps/v1", "apps", "deployments", "playback-api")["spec"]["replicas"] == 6
    audit = AuditEvent.objects.get(action="service.scale")
    assert (audit.door, audit.squad_id, audit.data["replicas"]) == ("api", squad.pk, 6)
    (delivery,) = EventDelivery.objects.filter(kind="event", event_type="service.scaled")
    assert delivery.payload["squad"] == squad.slug
    assert delivery.payload["data"] == {
        "service": "playback-api",
        "environment": "k8s",
        "replicas": 6,
        "previous": None,
        "via": "kubernetes",
        "status": "applied",
        "terraform_run": None,
    }

    runtime = client.get(f"/api/v1/services/{service.slug}/runtime").json()
    (env,) = runtime["environments"]
    assert env["environment"] == "k8s" and env["replicas"] == 6 and env["error"] == ""
    assert env["runtime"]["tracks"]["stable"]["ready"] == 6
    assert sorted(p["name"] for p in env["runtime"]["instances"]) == [
        "playback-api-7d9f-0",
        "playback-api-7d9f-1",
    ]
    assert runtime["min_replicas"] == 2 and runtime["max_replicas"] == 12


@pytest.mark.parametrize(
    "body, field",
    [
        ({"environment": "k8s", "replicas": 13}, "replicas"),  # over max
        ({"environment": "k8s", "replicas": 1}, "replicas"),  # under min
        ({"environment": "k8s", "replicas": 2.5}, "replicas"),
        ({"environment": "k8s", "replicas": "many"}, "replicas"),
        ({"environment": "k8s", "replicas": True}, "replicas"),
        ({"environment": "mars", "replicas": 3}, "environment"),
        ({"environment": "staging", "replicas": 3}, "environment"),  # local driver: cannot scale
    ],
)
def test_bad_scale_requests_name_the_field(kube, k8s_env, service, alice, body, field):
    Environment.objects.get_or_create(name="staging", defaults={"driver": "local"})
    r = client_for(alice).post(f"/api/v1/services/{service.slug}/scale", body, format="json")
    assert r.status_code == 400, r.content
    assert field in r.json()["errors"], r.json()
    assert not kube.writes() and not ScaleEvent.objects.exists()


def test_other_squads_and_tokens_without_the_scope_are_refused(
    kube, k8s_env, service, bob, squad, make_token
):
    r = client_for(bob).post(
        f"/api/v1/services/{service.slug}/scale",
        {"environment": "k8s", "replicas": 3},
        format="json",
    )
    assert r.status_code == 403
    c = token_client(make_token(squad, ["pipelines:run"]))
    r = c.post(
        f"/api/v1/services/{service.slug}/scale",
        {"environment": "k8s", "replicas": 3},
        format="json",
    )
    assert r.status_code == 403 and "scaling:write" in r.json()["message"]
    c = token_client(make_token(squad, ["scaling:write"]))
    r = c.post(
        f"/api/v1/services/{service.slug}/scale",
        {"environment": "k8s", "replicas": 3},
        format="json",
    )
    assert r.status_code == 201
    assert not kube.writes()[:-1]  # only the allowed call wrote


def test_deployer_down_is_a_502_and_nothing_recorded(kube, k8s_env, service, alice):
    kube.fail["playback-api"] = 500
    r = client_for(alice).post(
        f"/api/v1/services/{service.slug}/scale",
        {"environment": "k8s", "replicas": 3},
        format="json",
    )
    assert r.status_code == 502 and "HTTP 500" in r.json()["message"]
    assert not ScaleEvent.objects.exists()


def test_haproxy_scale_enables_and_drains_real_servers(tmp_path, service, alice):
    tracks = [Track(f"web{i}") for i in range(3)]
    proxy = HAProxy(tmp_path, tracks[0], tracks[1])
    try:
        env = Environment.objects.create(
            name="vm",
            driver="haproxy",
            driver_config={
                "socket": proxy.socket,
                "backend": "{service}",
                "stable_server": "stable",
                "canary_server": "canary",
                "servers": ["stable", "canary"],
            },
        )
        RuntimeAPI(proxy.socket).change("set server playback-api/canary weight 256")
        scaling.scale_service(service, actor=Actor(user=alice), environment=env, replicas=2)
        seen = proxy.send(100)
        assert set(seen) == {"web0", "web1"}
        with pytest.raises(Exception, match="room for 2"):
            scaling.scale_service(service, actor=Actor(user=alice), environment=env, replicas=3)
        scaling.scale_service(service, actor=Actor(user=alice), environment="vm", replicas=2)
        ServiceFactory._meta.model.objects.filter(pk=service.pk).update(
            annotations={"backline.io/min-replicas": "1"}
        )
        service.refresh_from_db()
        scaling.scale_service(service, actor=Actor(user=alice), environment=env, replicas=1)
        assert set(proxy.send(60)) == {"web0"}  # canary server in maintenance
        rows = {
            r["svname"]: r for r in RuntimeAPI(proxy.socket).stat() if r["pxname"] == "playback-api"
        }
        assert rows["canary"]["status"] == "MAINT"
        runtime = service_runtime(service)
        instances = {i["name"]: i for i in runtime["environments"][0]["runtime"]["instances"]}
        assert instances["canary"]["status"] == "MAINT" and instances["stable"]["track"] == "stable"
    finally:
        proxy.stop()
        for t in tracks:
            t.stop()


# --- schedules ------------------------------------------------------------------------------------
def _schedule(client, service, **over):
    body = {
        "environment": "k8s",
        "name": "evening peak",
        "cron": "0 17 * * 1-5",
        "duration_minutes": 360,
        "timezone": "Europe/Stockholm",
        "replicas": 12,
        "base_replicas": 4,
        **over,
    }
    return client.post(f"/api/v1/services/{service.slug}/schedules", body, format="json")


def test_schedule_windows_scale_up_and_back(kube, k8s_env, service, alice):
    client = client_for(alice)
    r = _schedule(client, service)
    assert r.status_code == 201, r.content
    # Tuesday 2026-12-01: 17:00 Stockholm is 16:00 UTC (CET)
    assert scaling.apply_schedules(datetime(2026, 12, 1, 15, 59, tzinfo=UTC)) == 1
    assert kube.get("apis/apps/v1", "apps", "deployments", "playback-api")["spec"]["replicas"] == 4
    assert scaling.apply_schedules(datetime(2026, 12, 1, 15, 59, 30, tzinfo=UTC)) == 0  # no change
    assert scaling.apply_schedules(datetime(2026, 12, 1, 16, 0, 5, tzinfo=UTC)) == 1
    assert kube.get("apis/apps/v1", "apps", "deployments", "playback-api")["spec"]["replicas"] == 12
    assert scaling.apply_schedules(datetime(2026, 12, 1, 22, 0, 5, tzinfo=UTC)) == 1  # 23:00 local
    assert kube.get("apis/apps/v1", "apps", "deployments", "playback-api")["spec"]["replicas"] == 4
    events = list(ScaleEvent.objects.order_by("at", "id").values_list("replicas", "door", "reason"))
    assert [(n, d) for n, d, _ in events] == [(4, "beat"), (12, "beat"), (4, "beat")]
    assert "window open" in events[1][2]
    audited = AuditEvent.objects.filter(action="service.scale").order_by("id")
    assert [(a.door, a.data["replicas"], a.data["previous"]) for a in audited] == [
        ("beat", 4, None),
        ("beat", 12, 4),
        ("beat", 4, 12),
    ]
    # Saturday: no window
    assert scaling.apply_schedules(datetime(2026, 12, 5, 16, 30, tzinfo=UTC)) == 0


@pytest.mark.parametrize(
    "over, field",
    [
        ({"cron": "0 18 * * 2"}, "cron"),  # overlaps the weekday window on Tuesdays
        # 15:00-15:30 UTC is inside 17:00-23:00 Stockholm only in summer time (UTC+2)
        ({"cron": "0 15 * * 1-5", "timezone": "UTC", "duration_minutes": 30}, "cron"),
        ({"cron": "every day"}, "cron"),
        ({"cron": "0 1 * * *", "timezone": "Mars/Olympus"}, "timezone"),
        ({"cron": "0 1 * * *", "replicas": 50}, "replicas"),
        ({"cron": "0 1 * * *", "base_replicas": 3}, "base_replicas"),
        ({"cron": "0 1 * * *", "duration_minutes": 0}, "duration_minutes"),
        ({"cron": "0 1 * * *", "environment": "nowhere"}, "environment"),
    ],
)
def test_bad_schedules_name_the_field(kube, k8s_env, service, alice, over, field):
    client = client_for(alice)
    assert _schedule(client, service).status_code == 201
    r = _schedule(client, service, **over)
    assert r.status_code == 400, r.content
    assert field in r.json()["errors"], r.json()
    assert ScaleSchedule.objects.count() == 1


def test_monthly_windows_overlapping_weeks_ahead_are_refused(kube, k8s_env, service, alice):
    client = client_for(alice)
    month_end = {"cron": "0 12 1 * *", "duration_minutes": 120, "timezone": "UTC"}
    assert _schedule(client, service, **month_end).status_code == 201
    r = _schedule(client, service, cron="30 13 1 * *", duration_minutes=30, timezone="UTC")
    assert r.status_code == 400 and "overlaps" in r.json()["errors"]["cron"][0], r.content
    r = _schedule(client, service, cron="0 14 1 * *", duration_minutes=30, timezone="UTC")
    assert r.status_code == 201, r.content  # right after it: no overlap
    assert ScaleSchedule.objects.count() == 2


def test_schedules_list_and_delete_by_the_squad_only(kube, k8s_env, service, alice, bob):
    sid = _schedule(client_for(alice), service).json()["id"]
    listed = client_for(bob).get(f"/api/v1/services/{service.slug}/schedules").json()
    assert [s["id"] for s in listed] == [sid] and listed[0]["timezone"] == "Europe/Stockholm"
    assert (
        client_for(bob).delete(f"/api/v1/services/{service.slug}/schedules/{sid}").status_code
        == 403
    )
    assert (
        client_for(alice).delete(f"/api/v1/services/{service.slug}/schedules/{sid}").status_code
        == 204
    )
    assert not ScaleSchedule.objects.exists()


# --- through Terraform ----------------------------------------------------------------------------
CAPACITY_TF = """
variable "replicas" {
  type    = number
  default = 4
}
resource "terraform_data" "capacity" {
  input = var.replicas
}
output "replicas" {
  value = terraform_data.capacity.output
}
"""


@pytest.mark.skipif(not Path(TF111).exists(), reason="the machine's Terraform 1.11 is needed")
@pytest.mark.usefixtures("ws_root")
def test_schedule_scales_through_the_terraform_workspace(squad, alice, client):
    ws = Workspace.objects.create(
        slug="playback-capacity",
        name="capacity",
        owner=squad,
        files={"main.tf": CAPACITY_TF},
        terraform_bin=TF111,
        auto_apply=True,
    )
    svc = ServiceFactory(
        slug="playback-tf",
        owner=squad,
        annotations={"backline.io/capacity-variable": "playback-capacity/replicas"},
    )
    env, _ = Environment.objects.get_or_create(name="production", defaults={"production": True})
    scaling.create_schedule(
        svc,
        actor=Actor(user=alice),
        environment="production",
        cron="0 17 * * 1-5",
        duration_minutes=360,
        timezone="Europe/Stockholm",
        replicas=12,
        base_replicas=4,
    )

    def run_pending():
        run = TerraformRun.objects.filter(workspace=ws).order_by("-number").first()
        runner.execute_plan(run.pk)  # auto-apply: plan, then apply
        run.refresh_from_db()
        assert run.status == RunStatus.APPLIED, run.error
        return Workspace.objects.get(pk=ws.pk).outputs["replicas"]["value"]

    assert scaling.apply_schedules(datetime(2026, 12, 1, 16, 30, tzinfo=UTC)) == 1
    event = ScaleEvent.objects.get()
    assert event.via == "terraform" and event.status == "planned" and event.terraform_run_id
    assert run_pending() == 12
    client.force_login(alice)
    page = client.get(f"/releases/services/{svc.slug}/runtime").content.decode()
    run = TerraformRun.objects.get(pk=event.terraform_run_id)
    # the timeline follows the plan to its apply; the panel shows the applied value
    assert f"run #{run.number}</a>" in page and ">applied</span>" in page, page
    assert "applied <strong>12</strong> replicas" in page
    assert "production (through Terraform)" in page
    assert scaling.apply_schedules(datetime(2026, 12, 1, 22, 30, tzinfo=UTC)) == 1
    assert run_pending() == 4
    assert ws.variables.get(key="replicas").value == "4"


def test_capacity_workspace_of_another_squad_is_refused(squad, other_squad, alice):
    Workspace.objects.create(slug="theirs", name="theirs", owner=other_squad, files={})
    svc = ServiceFactory(
        slug="sneaky", owner=squad, annotations={"backline.io/capacity-variable": "theirs/replicas"}
    )
    Environment.objects.get_or_create(name="production")
    with pytest.raises(Exception, match="another squad") as exc:
        scaling.scale_service(svc, actor=Actor(user=alice), environment="production", replicas=3)
    assert exc.value.status == 400
    assert not TerraformRun.objects.exists()


def test_runtime_panel_and_scale_form(kube, k8s_env, service, alice, bob, client):
    scaling.create_schedule(
        service,
        actor=Actor(user=alice),
        environment="k8s",
        cron="0 17 * * 1-5",
        duration_minutes=360,
        timezone="Europe/Stockholm",
        replicas=12,
        base_replicas=4,
        name="evening",
    )
    client.force_login(alice)
    r = client.post(
        f"/releases/services/{service.slug}/scale", {"environment": "k8s", "replicas": "5"}
    )
    assert r.status_code == 302
    assert kube.get("apis/apps/v1", "apps", "deployments", "playback-api")["spec"]["replicas"] == 5
    page = client.get(f"/releases/services/{service.slug}/runtime").content.decode()
    assert "playback-api-7d9f-1" in page and "evening" in page and "0 17 * * 1-5" in page
    assert 'name="replicas"' in page  # alice's squad: the Scale form
    assert "4 → <strong>5</strong>" not in page and "<strong>5</strong>" in page  # the timeline
    r = client.post(
        f"/releases/services/{service.slug}/scale",
        {"environment": "k8s", "replicas": "99"},
        follow=True,
    )
    assert "outside" in r.content.decode()  # the domain's message, on the service page
    client.force_login(bob)
    page = client.get(f"/releases/services/{service.slug}/runtime").content.decode()
    assert "playback-api-7d9f-1" in page and 'name="replicas"' not in page
    assert (
        client.post(
            f"/releases/services/{service.slug}/scale", {"environment": "k8s", "replicas": "3"}
        ).status_code
        == 403
    )


def test_runtime_panel_empty_state(service, alice, client):
    client.force_login(alice)
    page = client.get(f"/releases/services/{service.slug}/runtime").content.decode()
    assert "Not deployed anywhere Backline can see yet" in page
    assert "<table" not in page  # no runtime, schedule or timeline tables
    assert client.get(f"/api/v1/services/{service.slug}/runtime").json()["environments"] == []


def test_scale_actions_are_marked_on_the_request_rate_chart(kube, k8s_env, service, alice):
    scaling.scale_service(service, actor=Actor(user=alice), environment=k8s_env, replicas=7)
    charts = {c["signal"]: c["svg"] for c in service_dashboard(service, "1h", "all")["charts"]}
    assert "×7 k8s" in charts["request_rate"] and 'class="chart-mark"' in charts["request_rate"]
    assert "chart-mark" not in charts["error_ratio"]
