"""Artifacts and caches in an S3-compatible store (issue 18): a local server speaking S3's
protocol (moto in server mode, on a free port), driven by the real boto3 client from a real
Celery worker and from the portal's downloads."""

import hashlib
import io
import math
import re
import socket
import tarfile

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

from pipelines import artifacts, stores
from pipelines.models import Artifact, JobRun, PipelineRun, RunStatus
from portal.actors import Actor
from tests.conftest import WorkerProcess, client_for
from tests.pipelines.conftest import wait_for

BUCKET = "backline-artifacts"
KEY_ID = "AKIAEXAMPLEKEYID4242"
SECRET = "s3cr3t/NeverShowThisAnywhere+0123456789"
PREFIX = "ci/"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    """moto's S3 over HTTP on 127.0.0.1; ``env`` configures Backline for it."""

    def __init__(self):
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)

    def start(self):
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        self.client = boto3.client(
            "s3", endpoint_url=self.url, region_name="us-east-1",
            aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
        )  # fmt: skip
        self.client.create_bucket(Bucket=BUCKET)
        return self

    def stop(self):
        self.server.stop()

    def env(self, url=None) -> dict:
        return {
            "BACKLINE_ARTIFACTS_S3_BUCKET": BUCKET,
            "BACKLINE_ARTIFACTS_S3_ENDPOINT_URL": url or self.url,
            "BACKLINE_ARTIFACTS_S3_REGION": "us-east-1",
            "BACKLINE_ARTIFACTS_S3_ACCESS_KEY_ID": KEY_ID,
            "BACKLINE_ARTIFACTS_S3_SECRET_ACCESS_KEY": SECRET,
            "BACKLINE_ARTIFACTS_S3_PREFIX": PREFIX,
            "BACKLINE_ARTIFACTS_S3_MULTIPART_THRESHOLD": "5m",
            "BACKLINE_ARTIFACTS_S3_MULTIPART_CHUNKSIZE": "5m",
        }

    def keys(self) -> list[str]:
        answer = self.client.list_objects_v2(Bucket=BUCKET)
        return sorted(o["Key"] for o in answer.get("Contents", []))

    def body(self, key: str) -> bytes:
        return self.client.get_object(Bucket=BUCKET, Key=key)["Body"].read()


@pytest.fixture
def s3(settings):
    server = S3Server().start()
    for name, value in server.env().items():
        setattr(settings, name.removeprefix("BACKLINE_"), value)
    settings.ARTIFACTS_S3_MULTIPART_THRESHOLD = settings.ARTIFACTS_S3_MULTIPART_CHUNKSIZE = (
        5 * 2**20
    )
    yield server
    server.stop()


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
          head -c 12000000 /dev/urandom > dist/big.bin
          echo wheel > dist/app.whl
  huge:
    artifacts: {paths: [big.bin]}
    steps: [{name: big, run: "head -c 20000000 /dev/zero > big.bin"}]
"""


def _done(run_pk):
    return PipelineRun.objects.filter(pk=run_pk, finished_at__isnull=False).first()


def _run(service):
    from pipelines import services

    run, _ = services.trigger_run(service, actor=Actor.system("test"), ref="main")
    return wait_for(lambda: _done(run.pk), 240, what=f"run {run.pk}")


def _log(job) -> str:
    return "".join(job.log_chunks.order_by("offset").values_list("text", flat=True))


def _no_credentials(*texts):
    for text in texts:
        assert SECRET not in text and KEY_ID not in text


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_artifacts_and_cache_in_s3_on_a_real_worker(s3, settings, service, git_repo, alice):
    git_repo.commit({"backline.yml": SPEC}, "artifacts in s3")
    env = {**s3.env(), "PIPELINES_ARTIFACT_MAX_BYTES": "16m"}
    worker = WorkerProcess(concurrency=2, env=env).start()
    try:
        first, second = _run(service), _run(service)
        _check_runs(s3, first, second)
        _check_downloads(s3, settings, second, alice)
        _check_expiry(s3, first, second)
        s3.stop()  # S3 down: the job fails, saying so; nothing is kept
        third = _run(service)
    finally:
        worker.stop()
    assert third.status == RunStatus.FAILED
    build = JobRun.objects.get(run=third, name="build")
    assert f"the artifact store (s3://{BUCKET}/{PREFIX} at {s3.url}) failed to store" in build.error
    assert "Could not connect" in build.error and third.error.startswith("Job ")
    assert "not restored" in _log(build) and not Artifact.objects.filter(run=third).exists()
    page = client_for(alice).get(f"/pipelines/runs/{third.pk}/").content.decode()
    assert "failed to store" in page
    _no_credentials(page, _log(build), third.error, worker.logfile.read_text(errors="replace"))


def _check_runs(s3, first, second):
    assert first.status == second.status == RunStatus.FAILED  # the huge job, both times
    huge = JobRun.objects.get(run=first, name="huge")
    assert "artifacts of huge: more than 16.0 MiB" in huge.error
    build1, build2 = (JobRun.objects.get(run=r, name="build") for r in (first, second))
    assert build1.status == build2.status == "succeeded"
    assert "cache-miss" in _log(build1) and f"cache-hit {first.number}" in _log(build2)
    kept = {a.job_id: a for a in Artifact.objects.all()}
    assert set(kept) == {build1.pk, build2.pk}  # nothing of the huge jobs
    expected = {f"{PREFIX}caches/{first.service_id}/deps.tar.gz"}
    expected |= {f"{PREFIX}{a.key}" for a in kept.values()}
    assert s3.keys() == sorted(expected)
    assert not [k for k in s3.keys() if k.endswith(f"-{huge.pk}.tar.gz")]
    big = kept[build2.pk]
    head = s3.client.head_object(Bucket=BUCKET, Key=PREFIX + big.key)
    parts = math.ceil(big.size / (5 * 2**20))
    assert head["ContentLength"] == big.size and parts >= 3
    assert re.fullmatch(rf'"[0-9a-f]{{32}}-{parts}"', head["ETag"])  # a multipart upload


def _check_downloads(s3, settings, run, alice):
    api = client_for(alice)
    listed = api.get(f"/api/v1/runs/{run.pk}/artifacts")
    assert listed.status_code == 200
    (item,) = listed.json()
    artifact = Artifact.objects.get(pk=item["id"])
    stored = s3.body(PREFIX + artifact.key)
    resp = api.get(item["download_url"])
    assert resp.status_code == 200 and resp.streaming
    assert resp["Content-Length"] == str(len(stored))
    chunks = list(resp.streaming_content)
    assert len(chunks) > 10 and max(map(len, chunks)) <= stores.CHUNK  # streamed, not whole
    body = b"".join(chunks)
    assert body == stored and hashlib.sha256(body).hexdigest() == artifact.sha256
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        assert sorted(tar.getnames()) == ["dist/app.whl", "dist/big.bin"]
    href = f"/pipelines/runs/{run.pk}/artifacts/{item['id']}"
    page = api.get(f"/pipelines/runs/{run.pk}/").content.decode()
    assert href in page
    assert b"".join(api.get(href).streaming_content) == stored
    settings.ARTIFACTS_S3_PRESIGN = True  # a redirect to the bucket, signed for a while
    redirect = api.get(href)
    assert redirect.status_code == 302 and redirect["Location"].startswith(s3.url)
    assert SECRET not in redirect["Location"]
    assert requests.get(redirect["Location"], timeout=30).content == stored
    settings.ARTIFACTS_S3_PRESIGN = False
    detail = api.get(f"/api/v1/runs/{run.pk}/").content.decode()
    _no_credentials(page, detail, listed.content.decode())


def _check_expiry(s3, first, second):
    from pipelines import tasks

    Artifact.objects.filter(run=first).update(expires_at=first.created_at)
    tasks.expire_artifacts.delay()  # beat's task, on the worker
    wait_for(lambda: not Artifact.objects.filter(run=first).exists(), 60, what="expiry")
    runs = sorted(k for k in s3.keys() if "/runs/" in f"/{k}")
    assert runs == [f"{PREFIX}{a.key}" for a in Artifact.objects.filter(run=second)]


@pytest.mark.django_db
def test_an_s3_store_that_refuses_gives_clear_errors(s3, settings, service, alice):
    store = stores.current()
    assert isinstance(store, stores.S3Store) and SECRET not in repr(store.conf)
    settings.ARTIFACTS_S3_BUCKET = "no-such-bucket"
    missing = stores.current()
    with pytest.raises(stores.StoreError) as err:
        missing.open("runs/1/x.tar.gz")
    assert "s3://no-such-bucket/ci/" in str(err.value)
    run = PipelineRun.objects.create(service=service, number=1, status=RunStatus.SUCCEEDED)
    artifact = Artifact.objects.create(
        run=run, name="build", key="runs/x/0-1.tar.gz", sha256="0" * 64,
        expires_at=run.created_at.replace(year=run.created_at.year + 1),
    )  # fmt: skip
    with pytest.raises(stores.StoreError, match="NoSuchBucket"):
        missing.delete(artifact.key)
    assert artifacts.expire(now=artifact.expires_at) == 0  # kept for the next round
    assert Artifact.objects.filter(pk=artifact.pk).exists()
    settings.ARTIFACTS_S3_BUCKET = BUCKET
    settings.ARTIFACTS_S3_ENDPOINT_URL = f"http://127.0.0.1:{free_port()}"  # nothing there
    resp = client_for(alice).get(f"/api/v1/runs/{run.pk}/artifacts/{artifact.pk}")
    assert resp.status_code == 502, resp.content
    assert (
        "the artifact store" in resp.json()["message"]
        and "failed to read" in resp.json()["message"]
    )
    _no_credentials(resp.content.decode())
