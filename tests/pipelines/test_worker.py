"""End to end with a real git repository, a real Celery worker and real subprocesses."""

import base64
import json
import os

import pytest
from django.utils import timezone

from pipelines import services
from pipelines.models import LogChunk, PipelineConfig, PipelineRun, RunStatus
from portal.actors import Actor
from portal.models import AuditEvent
from tests.conftest import WorkerProcess, token_client
from tests.pipelines.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

API_KEY = "ak_live_9f8e7d6c5b4a"
PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEF\nAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----"
SECRET_SPEC = """\
stages:
  - name: leak
    steps:
      - name: try-to-leak
        secrets: [API_KEY, PEM]
        run: |
          echo "key=$API_KEY"
          printf %s "$API_KEY" | base64
          echo "$API_KEY" | base64
          printf '%s\\n' "$PEM"
          printf %s "$PEM" | base64
          echo done
"""


def spec(*steps, extra=""):
    lines = [extra, "stages:", "  - name: main", "    steps:"]
    for i, (run, opts) in enumerate(steps):
        lines.append(f"      - name: s{i}")
        lines.append(f"        run: {json.dumps(run)}")
        for k, v in opts.items():
            lines.append(f"        {k}: {v}")
    return "\n".join(lines) + "\n"


def log_text(run):
    return "".join(
        LogChunk.objects.filter(run=run).order_by("offset").values_list("text", flat=True)
    )


def over(run_id):
    run = PipelineRun.objects.get(pk=run_id)
    return run if run.is_over else None


def test_runs_on_a_real_worker(celery_worker_proc, service, git_repo, squad, make_token):
    repo = git_repo
    first = repo.head()
    second = repo.commit({"CHANGELOG": "v2\n"}, "second commit")
    for branch, files in {
        "broken": {"backline.yml": spec(("echo about to fail; exit 3", {}), ("echo never", {}))},
        "slow": {"backline.yml": spec(("echo slow; sleep 30; echo overslept", {"timeout": 1}))},
        "bad": {"backline.yml": "stages:\n  - name: build\n    steps:\n      - name: compile\n"},
        "secret": {"backline.yml": SECRET_SPEC},
        "hang": {"backline.yml": spec(("echo hanging; sleep 60; echo woke-up", {}))},
        "nospec": {"backline.yml": None},
    }.items():
        repo.checkout("main")
        repo.branch(branch)
        repo.commit(files, f"{branch} commit")
    repo.checkout("main")
    PipelineConfig.objects.create(
        service=service,
        spec_yaml='stages: [{name: build, steps: [{name: compile, run: "echo from-portal"}]}]',
    )
    actor = Actor.system("test")
    services.set_secret(service, actor=actor, name="API_KEY", value=API_KEY)
    services.set_secret(service, actor=actor, name="PEM", value=PEM)

    client = token_client(make_token(squad, ["pipelines:run"]))
    ids = {}
    for name, body in {
        "main": {"ref": "main"},
        "exact": {"ref": "main", "commit": first},
        "broken": {"ref": "broken"},
        "slow": {"ref": "slow"},
        "bad": {"ref": "bad"},
        "secret": {"ref": "secret"},
        "nospec": {"ref": "nospec"},
        "hang": {"ref": "hang"},
    }.items():
        resp = client.post(f"/api/v1/services/{service.slug}/runs", body, format="json")
        assert resp.status_code == 201, resp.content
        ids[name] = resp.json()["id"]

    # cancel the hanging step while it runs
    hang = ids["hang"]
    wait_for(
        lambda: "hanging" in log_text(PipelineRun.objects.get(pk=hang)), 60, what="hang output"
    )
    resp = client.post(f"/api/v1/runs/{hang}/cancel")
    assert resp.status_code == 202, resp.content
    run = wait_for(lambda: over(hang), 90, what="cancel")
    assert run.status == RunStatus.CANCELED
    assert run.steps.get().status == RunStatus.CANCELED
    # the step was killed, not let finish its sleep
    assert "woke-up" not in log_text(run).replace("echo woke-up", "")

    runs = {name: wait_for(lambda i=i: over(i), 120, what=f"run {name}") for name, i in ids.items()}

    main = runs["main"]
    assert main.status == RunStatus.SUCCEEDED, main.error
    assert main.commit_sha == second and main.spec_source == "repository"
    assert main.commit_message == "second commit" and main.commit_author == "Dev Eloper"
    steps = list(main.steps.order_by("index"))
    assert [(s.stage, s.name, s.status) for s in steps] == [
        ("build", "compile", "succeeded"),
        ("test", "unit", "succeeded"),
    ]
    assert all(s.duration is not None and s.duration >= 0 for s in steps)
    text = log_text(main)
    assert "compiling player at main" in text and "running tests" in text
    assert main.log_size == len(text.encode())

    assert runs["exact"].status == RunStatus.SUCCEEDED and runs["exact"].commit_sha == first

    broken = runs["broken"]
    assert broken.status == RunStatus.FAILED
    assert "exit code 3" in broken.error and "main/s0" in broken.error
    assert [s.status for s in broken.steps.order_by("index")] == ["failed", "canceled"]
    assert "never" not in log_text(broken).replace("echo never", "")

    slow = runs["slow"]
    assert slow.status == RunStatus.TIMED_OUT and "timed out after 1s" in slow.error
    # killed at its timeout, not after its sleep
    assert "overslept" not in log_text(slow).replace("echo overslept", "")

    bad = runs["bad"]
    assert bad.status == RunStatus.FAILED
    assert (
        "line 4" in bad.error
        and "stages[0].steps[0].run" in bad.error
        and "backline.yml" in bad.error
    )

    nospec = runs["nospec"]
    assert nospec.status == RunStatus.SUCCEEDED and nospec.spec_source == "portal"
    assert "from-portal" in log_text(nospec)

    # secrets: never in the stored log, the log API, the run API or the secrets API
    secret = runs["secret"]
    assert secret.status == RunStatus.SUCCEEDED, secret.error
    stored = log_text(secret)
    assert "key=***" in stored and "done" in stored
    api_log = client.get(f"/api/v1/runs/{secret.pk}/log?offset=0").json()["text"]
    api_run = client.get(f"/api/v1/runs/{secret.pk}/").content.decode()
    api_secrets = client.get(f"/api/v1/services/{service.slug}/pipeline-secrets").content.decode()
    assert "API_KEY" in api_secrets
    forbidden = [
        API_KEY,
        base64.b64encode(API_KEY.encode()).decode(),
        base64.b64encode((API_KEY + "\n").encode()).decode()[:16],
        "MIIEvQIBADANBgkqhkiG9w0BAQEF",
        "AASCBKcwggSjAgEAAoIBAQC7",
        base64.b64encode(PEM.encode()).decode()[:40],
    ]
    for where, body in {
        "stored": stored,
        "log api": api_log,
        "run api": api_run,
        "secrets api": api_secrets,
    }.items():
        for value in forbidden:
            assert value not in body, f"{value!r} leaked in {where}"

    # audit: every trigger and the cancel
    assert AuditEvent.objects.filter(action="pipeline.trigger").count() == len(ids)
    assert AuditEvent.objects.filter(action="pipeline.cancel", target_id=str(hang)).count() == 1
    # the workspace checkout of each run is removed when it ends
    assert not any((_runs_dir() / str(i)).exists() for i in ids.values())


def _runs_dir():
    from django.conf import settings

    return settings.WORKSPACE_ROOT / "pipelines" / "runs"


def test_sigkilled_worker_run_becomes_lost_then_rerun_succeeds(
    service, git_repo, monkeypatch, tmp_path, transactional_db
):
    # the first run hangs, its re-run does not (a flag file on the host would not be visible
    # inside the step's sandbox)
    git_repo.commit(
        {
            "backline.yml": spec(
                (
                    'echo before-kill; if [ "$BACKLINE_RUN_NUMBER" = 1 ]; then sleep 120; fi; '
                    "echo after",
                    {},
                )
            )
        },
        "hang in the first run",
    )
    monkeypatch.setenv("PIPELINES_HEARTBEAT_SECONDS", "0.5")
    worker = WorkerProcess().start()
    try:
        run, _ = services.trigger_run(service, actor=Actor.system("test"), ref="main")
        wait_for(lambda: "before-kill" in log_text(run), 60, what="first output")
        worker.kill()

        # the beat task's job, with a short staleness so the test is fast
        def reaped():
            services.reap_lost(stale_seconds=2)
            return over(run.pk)

        lost = wait_for(reaped, 120, interval=0.5, what="lost")
        assert lost.status == RunStatus.LOST
        assert "stopped sending heartbeats" in lost.error
        text = log_text(lost)
        assert "before-kill" in text and "marked lost" in text
        assert lost.steps.get().status == RunStatus.LOST
        assert AuditEvent.objects.filter(action="pipeline.run.lost", target_id=str(run.pk)).exists()
        assert not (_runs_dir() / str(run.pk)).exists()  # the reaper removed the orphaned checkout
    finally:
        worker.stop()
    # the orphaned step process died with its process group
    worker = WorkerProcess().start()
    try:
        new = services.rerun_run(lost, actor=Actor.system("test"))
        done = wait_for(lambda: over(new.pk), 60, what="re-run")
        assert done.status == RunStatus.SUCCEEDED, done.error
        assert done.rerun_of_id == run.pk and done.commit_sha == lost.commit_sha
        assert "after" in log_text(done)
    finally:
        worker.stop()


def test_reaper_leaves_live_runs_alone(service):
    run, _ = services.trigger_run(service, actor=Actor.system("test"), ref="main")
    from django.utils import timezone

    PipelineRun.objects.filter(pk=run.pk).update(status="running", heartbeat_at=timezone.now())
    assert services.reap_lost(stale_seconds=30) == []
    PipelineRun.objects.filter(pk=run.pk).update(
        heartbeat_at=timezone.now() - timezone.timedelta(seconds=31)
    )
    assert services.reap_lost(stale_seconds=30) == [run.pk]
    assert os.environ.get("PIPELINES_HEARTBEAT_SECONDS") is None


def test_queued_runs_whose_message_was_lost_are_sent_again(transactional_db, service):
    import redis
    from django.conf import settings

    from pipelines.models import PipelineRun as Run

    run, _ = services.trigger_run(service, actor=Actor.system("test"), ref="main")
    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # the broker lost the message
    assert services.requeue_stale(after_seconds=60) == []  # too recent
    Run.objects.filter(pk=run.pk).update(
        heartbeat_at=timezone.now() - timezone.timedelta(seconds=61)
    )
    worker = WorkerProcess().start()  # (flushes the broker again: re-send after it is up)
    try:
        assert services.requeue_stale(after_seconds=60) == [run.pk]
        done = wait_for(lambda: over(run.pk), 60, what="re-sent run")
        assert done.status == RunStatus.SUCCEEDED, done.error
    finally:
        worker.stop()


def test_credentials_in_the_repository_url_never_reach_the_log(service):
    from portal.gitsource import redact_url, url_secrets

    url = "https://ci-bot:ghp_TopSecret123@github.invalid/acme/player.git"
    assert redact_url(url) == "https://****@github.invalid/acme/player.git"
    assert "ghp_TopSecret123" in url_secrets(url)
    assert url_secrets("file:///tmp/repo") == [] and redact_url("/tmp/repo") == "/tmp/repo"
    from pipelines import runner

    service.repository_url = url
    service.save()
    run, _ = services.trigger_run(service, actor=Actor.system("test"), ref="main")
    runner.execute(run.pk)  # in-process: the fetch fails (no such host), the log stays clean
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and "Source" in run.error
    text = log_text(run)
    assert "github.invalid" in text and "ghp_TopSecret123" not in text and "ci-bot:" not in text
