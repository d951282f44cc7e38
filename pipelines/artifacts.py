"""Artifacts and caches of ``jobs:`` pipelines, kept as gzipped tar files.

Files are collected from the job's checkout only: the walk never follows a symbolic link
(a link is skipped and said so in the log), files are opened with ``O_NOFOLLOW``, and nothing
outside the checkout can match (paths are relative, without ``..``: ``pipelines.jobspec``).
A job's artifacts or cache over the cap (``PIPELINES_ARTIFACT_MAX_BYTES``,
``PIPELINES_CACHE_MAX_BYTES``) are not stored at all: an artifact over the cap fails the job,
a cache over it is not saved (a warning). Archives are written to a staging file and then
handed to the store, so a reader never sees half of one. Restoring a cache extracts it with
tarfile's ``data`` filter (no absolute paths, no links out, no devices).

The store (``pipelines.stores``) is a directory (``PIPELINES_ARTIFACT_DIR``, by default
``var/artifacts``) or an S3-compatible bucket (``BACKLINE_ARTIFACTS_S3_BUCKET``). A store that
fails fails the job's artifacts (the job fails, saying so) but not its cache (a warning).
"""

import fnmatch
import hashlib
import logging
import os
import stat
import tarfile
import tempfile
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.http import Http404, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.http import content_disposition_header

from pipelines import stores
from pipelines.jobspec import expire_seconds
from pipelines.models import Artifact
from portal.errors import Unavailable

logger = logging.getLogger(__name__)
StoreError = stores.StoreError


class TooLarge(Exception):
    """The files matched are more than the cap allows."""


KEEP_ERRORS = (TooLarge, StoreError)  # a job's artifacts that could not be kept: it fails


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def collect(root: Path, patterns: list[str]) -> tuple[list[str], list[str]]:
    """(files, skipped links): relative paths of the regular files under ``root`` that a
    pattern matches (a matched directory brings everything under it)."""
    files, links = [], []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel_dir = os.path.relpath(dirpath, root)
        for name in sorted(dirnames + filenames):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if rel == ".git" or rel.startswith(".git/"):
                continue
            matched = any(
                fnmatch.fnmatchcase(rel, p.rstrip("/"))
                or rel.startswith(p.rstrip("/") + "/")
                or (p.endswith("/**") and rel.startswith(p[:-3]))
                for p in patterns
            )
            if not matched:
                continue
            mode = os.lstat(os.path.join(dirpath, name)).st_mode
            if stat.S_ISLNK(mode):
                links.append(rel)
            elif stat.S_ISREG(mode):
                files.append(rel)
        dirnames[:] = [d for d in dirnames if d != ".git"]
    return sorted(set(files)), sorted(set(links))


def _pack(root: Path, files: list[str], cap: int, what: str, key: str) -> tuple[int, str, int]:
    """Write ``files`` of ``root`` to the store under ``key``; (content bytes, sha256, archive
    bytes). Over ``cap``: TooLarge, and nothing is written anywhere."""
    total = 0
    for rel in files:
        total += os.lstat(root / rel).st_size
        if total > cap:
            raise TooLarge(
                f"{what}: more than {_mb(cap)} of files ({len(files)} matched); the cap is "
                f"{_mb(cap)} per job"
            )
    store = stores.current()
    fd, tmp = tempfile.mkstemp(dir=store.staging_dir(), prefix=".tmp-", suffix=".tar.gz")
    try:
        with os.fdopen(fd, "wb") as out, tarfile.open(fileobj=out, mode="w:gz") as tar:
            for rel in files:
                _add(tar, root, rel)
        digest = hashlib.sha256()
        with open(tmp, "rb") as f:
            for block in iter(lambda: f.read(2**20), b""):
                digest.update(block)
        size = os.stat(tmp).st_size
        store.put(key, Path(tmp))
    finally:
        Path(tmp).unlink(missing_ok=True)
    return total, digest.hexdigest(), size


def _add(tar, root: Path, rel: str):
    fd = os.open(root / rel, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        info = tarfile.TarInfo(rel)
        info.size, info.mtime, info.mode = st.st_size, int(st.st_mtime), st.st_mode & 0o755
        tar.addfile(info, f)


def save_artifacts(job, spec: dict, workdir: Path, log) -> Artifact | None:
    """Keep the files ``spec`` names (a job's ``artifacts``); TooLarge over the cap,
    StoreError when the store did not take them (no row then)."""
    files, links = collect(workdir, spec["paths"])
    for rel in links:
        log(f"artifacts: skipped {rel} (a symbolic link)\n")
    if not files:
        log(f"artifacts: no file matched {', '.join(spec['paths'])}\n")
        return None
    key = f"runs/{job.run_id}/{job.index}-{job.pk}.tar.gz"
    what = f"artifacts of {job.name}"
    content, sha, size = _pack(workdir, files, settings.PIPELINES_ARTIFACT_MAX_BYTES, what, key)
    expire = spec.get("expire_in") or expire_seconds(settings.PIPELINES_ARTIFACT_EXPIRE_IN)
    artifact = Artifact.objects.create(
        run_id=job.run_id,
        job=job,
        name=job.name,
        key=key,
        size=size,
        content_bytes=content,
        files=len(files),
        sha256=sha,
        expires_at=timezone.now() + timedelta(seconds=expire),
    )
    log(f"artifacts: kept {len(files)} files ({_mb(content)}), sha256 {sha[:12]}\n")
    return artifact


def artifact_response(run, artifact_id):
    """The download of one artifact of ``run`` (404: not this run's, expired, or gone),
    streamed from the store; a redirect to a presigned URL when the S3 store presigns."""
    artifact = get_object_or_404(Artifact, run=run, pk=artifact_id, expires_at__gt=timezone.now())
    name = f"{run.service.slug}-{run.number}-{artifact.name}.tar.gz".replace(" ", "_")
    store = stores.current()
    try:
        url = store.download_url(artifact.key, name)
        if url:
            return HttpResponseRedirect(url)
        chunks = store.open(artifact.key)
    except StoreError as exc:
        raise Unavailable(str(exc), code="artifact_store") from None
    if chunks is None:
        raise Http404("The artifact's file is gone from the store.")
    response = StreamingHttpResponse(chunks, content_type="application/gzip")
    response["Content-Disposition"] = content_disposition_header(True, name)
    response["Content-Length"] = str(chunks.size)
    return response


def _cache_key(service_id, key: str) -> str:
    return f"caches/{service_id}/{key}.tar.gz"


def restore_cache(service_id, spec: dict, workdir: Path, log) -> bool:
    try:
        with stores.current().fetch(_cache_key(service_id, spec["key"])) as path:
            if path is None:
                log(f"cache {spec['key']}: none yet\n")
                return False
            with tarfile.open(path, "r:gz") as tar:
                tar.extractall(workdir, filter="data")
            size = path.stat().st_size
    except StoreError as exc:
        log(f"⚠ cache {spec['key']}: not restored: {exc}\n")
        return False
    log(f"cache {spec['key']}: restored ({_mb(size)})\n")
    return True


def save_cache(service_id, spec: dict, workdir: Path, log) -> bool:
    files, _links = collect(workdir, spec["paths"])
    if not files:
        log(f"cache {spec['key']}: nothing to save\n")
        return False
    key, cap = _cache_key(service_id, spec["key"]), settings.PIPELINES_CACHE_MAX_BYTES
    try:
        content, _sha, _size = _pack(workdir, files, cap, f"cache {spec['key']}", key)
    except (TooLarge, StoreError) as exc:
        log(f"⚠ {exc}: not saved\n")
        return False
    log(f"cache {spec['key']}: saved {len(files)} files ({_mb(content)})\n")
    return True


def expire(now=None) -> int:
    """Beat: remove artifacts past ``expires_at`` (the stored archive, then the row). One the
    store fails to delete stays for the next round (a warning)."""
    now = now or timezone.now()
    store = stores.current()
    gone = 0
    for artifact in Artifact.objects.filter(expires_at__lte=now).iterator():
        try:
            store.delete(artifact.key)
        except StoreError as exc:
            logger.warning("artifact %s not expired yet: %s", artifact.pk, exc)
            continue
        artifact.delete()
        gone += 1
    return gone
