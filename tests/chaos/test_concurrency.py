"""Crowds against a real gunicorn (2 processes x 4 threads): 50 concurrent promotes of one
paused release, 20 concurrent deliveries of one GitHub webhook, 2 concurrent applies of one
Terraform plan. Exactly one effect each."""

import json
import threading

import pytest
import requests

from tests.chaos.conftest import record, wait_for
from tests.releases.conftest import settle

pytestmark = [pytest.mark.chaos, pytest.mark.django_db(transaction=True)]


def crowd(n, fn):
    """Run fn() in n threads released at once; returns the results."""
    barrier = threading.Barrier(n)
    results = [None] * n

    def hit(i):
        barrier.wait()
        try:
            results[i] = fn()
        except Exception as exc:  # noqa: BLE001 - counted as a failure below
            results[i] = exc

    threads = [threading.Thread(target=hit, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def test_50_concurrent_promotes_move_one_step(gunicorn, paused_release, squad, make_token):
    from portal.models import AuditEvent
    from releases.models import Release, ReleaseEvent

    r = paused_release()
    token = make_token(squad, scopes=["releases:promote"])
    url = f"{gunicorn.url}/api/v1/releases/{r.pk}/promote"
    codes = crowd(
        50,
        lambda: (
            requests.post(url, headers={"Authorization": f"Bearer {token}"}, timeout=60).status_code
        ),
    )
    assert sorted(set(codes)) == [200, 409], codes
    assert codes.count(200) == 1
    r = settle(Release.objects.get(pk=r.pk))  # the wanted 30 % applied, as a worker does
    assert r.step_index == 3 and r.weight == 30 and r.status == "paused"
    assert AuditEvent.objects.filter(action="release.promote").count() == 1
    assert ReleaseEvent.objects.filter(release=r, kind="weight", weight=30).count() == 1
    record("50 concurrent promotes of one paused release", 50, "1 × 200, 49 × 409; one step moved")


def test_20_duplicate_webhook_deliveries_start_one_run(gunicorn, squad, shared_data):
    from pipelines.models import PipelineRun
    from portal.inbound import signature_for
    from tests.factories import ServiceFactory

    secret = "chaos-webhook-secret"
    ServiceFactory(
        slug="hello-world",
        owner=squad,
        repository_url="https://github.com/Codertocat/Hello-World",
        webhook_secret=secret,
        default_branch="master",
    )
    body = (shared_data / "github-webhooks" / "push-with-new-branch.payload.json").read_bytes()
    raw = json.dumps(json.loads(body)).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": "chaos-delivery-1",
        "X-Hub-Signature-256": signature_for(secret, raw),
    }

    def deliver():
        resp = requests.post(f"{gunicorn.url}/hooks/github", data=raw, headers=headers, timeout=60)
        return resp.status_code, resp.json().get("run_id")

    results = crowd(20, deliver)
    codes = [c for c, _ in results]
    assert codes.count(202) == 1 and codes.count(200) == 19, results
    assert len({run_id for _, run_id in results}) == 1  # the duplicates name the same run
    assert PipelineRun.objects.count() == 1
    record(
        "20 duplicate deliveries of one GitHub push webhook",
        20,
        "1 × 202, 19 × 200 duplicate; 1 run",
    )


def test_2_concurrent_applies_apply_once(gunicorn, squad, make_token, tmp_path, chaos_root):
    from infra import runner, services
    from infra.models import RunStatus, TerraformRun, Variable, Workspace
    from portal.actors import Actor
    from portal.models import AuditEvent
    from tests.conftest import WorkerProcess
    from tests.infra.conftest import CONFIG, published, terraform_binary, write_state

    upstream = write_state(published("upstream.tfstate"), {"val": "one"})
    ws = Workspace.objects.create(
        slug="chaos-apply",
        name="Chaos apply",
        owner=squad,
        files={"main.tf": CONFIG},
        terraform_bin=terraform_binary(),
    )
    for key, value, sensitive in (
        ("name", "world", False),
        ("secret", "s3cr3t", True),
        ("upstream_state", str(upstream), False),
    ):
        Variable.objects.create(workspace=ws, key=key, value=value, sensitive=sensitive)
    run = services.queue_run(ws, actor=Actor.system("chaos"))
    runner.execute_plan(run.pk)  # planned, awaiting confirmation
    assert TerraformRun.objects.get(pk=run.pk).status == RunStatus.PLANNED
    token = make_token(squad, scopes=["infra:apply"])
    url = f"{gunicorn.url}/api/v1/terraform-runs/{run.pk}/apply"
    worker = WorkerProcess(concurrency=2).start()  # (starting it empties the Redis db)
    try:
        codes = crowd(
            2,
            lambda: (
                (
                    requests.post(url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
                ).status_code
            ),
        )
        assert sorted(codes) == [200, 409], codes
        wait_for(
            lambda: (
                TerraformRun.objects.get(pk=run.pk).status in (RunStatus.APPLIED, RunStatus.ERRORED)
            ),
            120,
            "the apply",
        )
    finally:
        worker.stop()
    done = TerraformRun.objects.get(pk=run.pk)
    assert done.status == RunStatus.APPLIED, done.error
    log = "".join(done.log_chunks.order_by("offset").values_list("text", flat=True))
    assert log.count("Apply complete") <= 1
    assert AuditEvent.objects.filter(action="infra.run.apply", target_id=str(run.pk)).count() == 1
    ws.refresh_from_db()
    assert ws.lock_run_id is None
    record("2 concurrent applies of one Terraform plan", 2, "1 × 200, 1 × 409; applied once")
