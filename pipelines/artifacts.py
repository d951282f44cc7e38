"""Artifacts and caches of ``jobs:`` pipelines, kept as gzipped tar files.

Files are collected from the job's checkout only: the walk never follows a symbolic link
(a link is skipped and said so in the log), files are opened with ``O_NOFOLLOW``, and nothing
outside the checkout can match (paths are relative, without ``..``: ``pipelines.jobspec``).
A job's artifacts or cache over the cap (``PIPELINES_ARTIFACT_MAX_BYTES``,
``PIPELINES_CACHE_MAX_BYTES``) are not stored at all: an artifact over the cap fails the job,
a cache over it is not saved (a warning). Archives are written to a temporary file and renamed
into place, so a reader never sees half of one. Restoring a cache extracts it with tarfile's
``data`` filter (no absolute paths, no links out, no devices).

The store is a directory (``PIPELINES_ARTIFACT_DIR``, by default ``var/artifacts``); an
S3-compatible store is not built (boto3 is not a dependency).
"""

import fnmatch
import hashlib
import os
import stat
import tarfile
import tempfile
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone

from pipelines.jobspec import expire_seconds
from pipelines.models import Artifact


class TooLarge(Exception):
    """The files matched are more than the cap allows."""


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


def _pack(root: Path, files: list[str], cap: int, what: str, dest: Path) -> tuple[int, str]:
    """Write ``files`` of ``root`` to ``dest`` (tmp + rename); (content bytes, sha256)."""
    total = 0
    for rel in files:
        total += os.lstat(root / rel).st_size
        if total > cap:
            raise TooLarge(
                f"{what}: more than {_mb(cap)} of files ({len(files)} matched); the cap is "
                f"{_mb(cap)} per job"
            )
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-", suffix=".tar.gz")
    try:
        with os.fdopen(fd, "wb") as out, tarfile.open(fileobj=out, mode="w:gz") as tar:
            for rel in files:
                _add(tar, root, rel)
        digest = hashlib.sha256()
        with open(tmp, "rb") as f:
            for block in iter(lambda: f.read(2**20), b""):
                digest.update(block)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return total, digest.hexdigest()


def _add(tar, root: Path, rel: str):
    fd = os.open(root / rel, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        info = tarfile.TarInfo(rel)
        info.size, info.mtime, info.mode = st.st_size, int(st.st_mtime), st.st_mode & 0o755
        tar.addfile(info, f)


def store_root() -> Path:
    return Path(settings.PIPELINES_ARTIFACT_DIR)


def save_artifacts(job, spec: dict, workdir: Path, log) -> Artifact | None:
    """Keep the files ``spec`` names (a job's ``artifacts``); TooLarge over the cap."""
    files, links = collect(workdir, spec["paths"])
    for rel in links:
        log(f"artifacts: skipped {rel} (a symbolic link)\n")
    if not files:
        log(f"artifacts: no file matched {', '.join(spec['paths'])}\n")
        return None
    key = f"runs/{job.run_id}/{job.index}-{job.pk}.tar.gz"
    dest = store_root() / key
    content, sha = _pack(
        workdir, files, settings.PIPELINES_ARTIFACT_MAX_BYTES, f"artifacts of {job.name}", dest
    )
    expire = spec.get("expire_in") or expire_seconds(settings.PIPELINES_ARTIFACT_EXPIRE_IN)
    artifact = Artifact.objects.create(
        run_id=job.run_id,
        job=job,
        name=job.name,
        key=key,
        size=dest.stat().st_size,
        content_bytes=content,
        files=len(files),
        sha256=sha,
        expires_at=timezone.now() + timedelta(seconds=expire),
    )
    log(f"artifacts: kept {len(files)} files ({_mb(content)}), sha256 {sha[:12]}\n")
    return artifact


def artifact_path(artifact: Artifact) -> Path:
    return store_root() / artifact.key


def artifact_response(run, artifact_id) -> FileResponse:
    """The download of one artifact of ``run`` (404: not this run's, expired, or gone)."""
    artifact = get_object_or_404(Artifact, run=run, pk=artifact_id, expires_at__gt=timezone.now())
    path = artifact_path(artifact)
    if not path.is_file():
        raise Http404("The artifact's file is gone from the store.")
    name = f"{run.service.slug}-{run.number}-{artifact.name}.tar.gz".replace(" ", "_")
    return FileResponse(
        open(path, "rb"), as_attachment=True, filename=name, content_type="application/gzip"
    )


def _cache_path(service_id, key: str) -> Path:
    return store_root() / "caches" / str(service_id) / f"{key}.tar.gz"


def restore_cache(service_id, spec: dict, workdir: Path, log) -> bool:
    path = _cache_path(service_id, spec["key"])
    if not path.is_file():
        log(f"cache {spec['key']}: none yet\n")
        return False
    with tarfile.open(path, "r:gz") as tar:
        tar.extractall(workdir, filter="data")
    log(f"cache {spec['key']}: restored ({_mb(path.stat().st_size)})\n")
    return True


def save_cache(service_id, spec: dict, workdir: Path, log) -> bool:
    files, _links = collect(workdir, spec["paths"])
    if not files:
        log(f"cache {spec['key']}: nothing to save\n")
        return False
    try:
        content, _sha = _pack(
            workdir,
            files,
            settings.PIPELINES_CACHE_MAX_BYTES,
            f"cache {spec['key']}",
            _cache_path(service_id, spec["key"]),
        )
    except TooLarge as exc:
        log(f"⚠ {exc}: not saved\n")
        return False
    log(f"cache {spec['key']}: saved {len(files)} files ({_mb(content)})\n")
    return True


def expire(now=None) -> int:
    """Beat: remove artifacts past ``expires_at`` (file and row)."""
    now = now or timezone.now()
    gone = 0
    for artifact in Artifact.objects.filter(expires_at__lte=now).iterator():
        artifact_path(artifact).unlink(missing_ok=True)
        artifact.delete()
        gone += 1
    return gone
