"""Artifacts and caches of ``jobs:`` pipelines (issue 18): collected from the checkout only
(never through a symbolic link), capped, kept across runs; a real Celery worker runs them."""

import io
import os
import tarfile

import pytest
from django.conf import settings

from pipelines import artifacts
from pipelines.models import Artifact, JobRun, PipelineRun, RunStatus
from pipelines.spec import SpecError, parse
from portal.actors import Actor
from tests.conftest import WorkerProcess, client_for
from tests.pipelines.conftest import wait_for


def test_collect_matches_files_and_never_follows_links(tmp_path):
    root = tmp_path / "checkout"
    (root / "dist" / "sub").mkdir(parents=True)
    (root / "dist" / "app.whl").write_text("wheel")
    (root / "dist" / "sub" / "notes.txt").write_text("notes")
    (root / "other.txt").write_text("other")
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "key").write_text("do not take me")
    os.symlink(outside / "key", root / "dist" / "key-link")
    os.symlink(outside, root / "dist" / "dir-link")
    files, links = artifacts.collect(root, ["dist"])
    assert files == ["dist/app.whl", "dist/sub/notes.txt"]
    assert links == ["dist/dir-link", "dist/key-link"]
    assert artifacts.collect(root, ["*.txt"])[0] == ["dist/sub/notes.txt", "other.txt"]


@pytest.mark.parametrize(
    "block, field, words",
    [
        ("artifacts: {paths: [../up]}", "jobs.a.artifacts.paths[0]", "inside the checkout"),
        ("artifacts: {paths: [/etc]}", "jobs.a.artifacts.paths[0]", "relative"),
        ("artifacts: {paths: [d], expire_in: soon}", "jobs.a.artifacts.expire_in", "duration"),
        ("artifacts: {expire_in: 7d}", "jobs.a.artifacts.paths", "required"),
        ("cache: {key: 'a b', paths: [x]}", "jobs.a.cache.key", "valid cache key"),
        ("cache: {paths: [x]}", "jobs.a.cache.key", "required"),
    ],
)
def test_bad_artifacts_and_cache_are_errors(block, field, words):
    with pytest.raises(SpecError) as exc:
        parse(f"jobs:\n  a:\n    {block}\n    steps: [{{run: x}}]\n")
    assert exc.value.field == field and words in exc.value.message, exc.value


def test_expire_in_is_parsed():
    spec = parse("jobs:\n  a:\n    artifacts: {paths: [d], expire_in: 7d}\n    steps: [{run: x}]\n")
    assert spec.data["jobs"][0]["artifacts"] == {"paths": ["d"], "expire_in": 7 * 86400}


SPEC = """\
jobs:
  build:
    cache: {key: deps, paths: [.cache]}
    artifacts: {paths: [dist], expire_in: 2d}
    steps:
      - name: make
        run: |
          if [ -f .cache/count ]; then echo "cache-hit $(cat .cache/count)"; else echo cache-miss; fi
          mkdir -p .cache dist && echo "$BACKLINE_RUN_NUMBER" > .cache/count
          echo wheel > dist/app.whl
          ln -s /etc/hostname dist/escape
  huge:
    artifacts: {paths: [big.bin]}
    steps: [{name: big, run: "head -c 3000000 /dev/zero > big.bin"}]
"""


def _done(run_pk):
    return PipelineRun.objects.filter(pk=run_pk, finished_at__isnull=False).first()


@pytest.mark.django_db(transaction=True)
def test_artifacts_and_cache_on_a_real_worker(monkeypatch, service, git_repo, alice):
    from pipelines import services

    monkeypatch.setenv("PIPELINES_ARTIFACT_MAX_BYTES", "1m")
    git_repo.commit({"backline.yml": SPEC}, "artifacts")
    worker = WorkerProcess(concurrency=2).start()
    try:
        first, _ = services.trigger_run(service, actor=Actor.system("test"), ref="main")
        first = wait_for(lambda: _done(first.pk), 180, what="first run")
        second, _ = services.trigger_run(service, actor=Actor.system("test"), ref="main")
        second = wait_for(lambda: _done(second.pk), 180, what="second run")
    finally:
        worker.stop()
    assert first.status == RunStatus.FAILED  # the huge job: artifacts over the cap
    huge = JobRun.objects.get(run=first, name="huge")
    assert huge.status == "failed" and "artifacts of huge: more than 1.0 MiB" in huge.error
    assert not Artifact.objects.filter(job=huge).exists()
    store = settings.PIPELINES_ARTIFACT_DIR
    leftovers = [p.name for p in store.rglob("*") if p.is_file() and "huge" in p.name]
    assert leftovers == [] and not list(store.rglob(".tmp-*"))

    build1 = JobRun.objects.get(run=first, name="build")
    build2 = JobRun.objects.get(run=second, name="build")
    log1 = "".join(build1.log_chunks.order_by("offset").values_list("text", flat=True))
    log2 = "".join(build2.log_chunks.order_by("offset").values_list("text", flat=True))
    assert "cache-miss" in log1 and "skipped dist/escape (a symbolic link)" in log1
    assert f"cache-hit {first.number}" in log2  # restored from the first run

    api = client_for(alice)
    listed = api.get(f"/api/v1/runs/{second.pk}/artifacts").json()
    assert [a["name"] for a in listed] == ["build"] and listed[0]["files"] == 1
    resp = api.get(listed[0]["download_url"])
    assert resp.status_code == 200 and resp["Content-Type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(b"".join(resp.streaming_content)), mode="r:gz") as tar:
        assert tar.getnames() == ["dist/app.whl"]
        assert tar.extractfile("dist/app.whl").read() == b"wheel\n"
    assert api.get(f"/api/v1/runs/{first.pk}/artifacts/{listed[0]['id']}").status_code == 404
    page = api.get(f"/pipelines/runs/{second.pk}/")
    href = f"/pipelines/runs/{second.pk}/artifacts/{listed[0]['id']}"
    assert href.encode() in page.content and b'class="jobgraph"' in page.content
    assert api.get(href).status_code == 200

    Artifact.objects.update(expires_at=first.created_at)
    assert artifacts.expire() == 2
    assert api.get(href).status_code == 404
