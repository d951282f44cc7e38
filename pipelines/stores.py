"""Where artifacts and caches are kept: a directory (``LocalStore``, the default:
``PIPELINES_ARTIFACT_DIR``) or an S3-compatible bucket (``S3Store``, when
``BACKLINE_ARTIFACTS_S3_BUCKET`` is set), both behind one small interface.

Keys are relative (``runs/<run>/<job>.tar.gz``, ``caches/<service>/<key>.tar.gz``); the S3 store
puts ``BACKLINE_ARTIFACTS_S3_PREFIX`` before them. An archive is written to a staging file first
(``staging_dir``) and then handed to ``put``: the local store renames it into place (a reader
never sees half of one), the S3 store uploads it through boto3's transfer manager (multipart
above ``BACKLINE_ARTIFACTS_S3_MULTIPART_THRESHOLD``) and removes it. Reads stream (``open``
answers an iterator of chunks, never the whole file); ``fetch`` gives a local file for the
time of a ``with`` block (a cache being restored).

Every failure of the store is a :class:`StoreError` that names the bucket and endpoint and
what S3 said; the access key and the secret are never in it (nor in a log line).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings

from portal.urlsecrets import redact_credentials

CHUNK = 2**20  # bytes a download is streamed in
MISSING = {"404", "NoSuchKey", "NotFound"}


class StoreError(Exception):
    """The store refused or did not answer; the message is safe to show."""


class Chunks:
    """A download as chunks, closed with the response (Django calls ``close``)."""

    def __init__(self, source, size: int, read):
        self.source, self.size, self._read = source, size, read

    def __iter__(self) -> Iterator[bytes]:
        while block := self._read(CHUNK):
            yield block

    def close(self) -> None:
        self.source.close()


class LocalStore:
    kind = "local"

    def __init__(self, root: Path):
        self.root = Path(root)

    def describe(self) -> str:
        return str(self.root)

    def staging_dir(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root  # the same file system: ``put`` is a rename

    def put(self, key: str, path: Path) -> None:
        dest = self.root / key
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, dest)

    def open(self, key: str) -> Chunks | None:
        path = self.root / key
        if not path.is_file():
            return None
        f = open(path, "rb")  # noqa: SIM115 - closed with the response
        return Chunks(f, os.fstat(f.fileno()).st_size, f.read)

    @contextlib.contextmanager
    def fetch(self, key: str) -> Iterator[Path | None]:
        path = self.root / key
        yield path if path.is_file() else None

    def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)

    def download_url(self, key: str, filename: str) -> str | None:
        return None


@dataclass(frozen=True)
class S3Config:
    bucket: str
    endpoint_url: str
    region: str
    access_key_id: str
    secret_access_key: str
    prefix: str
    addressing: str
    presign: bool
    presign_seconds: int
    multipart_threshold: int
    multipart_chunksize: int
    timeout: float

    @classmethod
    def from_settings(cls) -> S3Config:
        s = settings
        return cls(
            s.ARTIFACTS_S3_BUCKET, s.ARTIFACTS_S3_ENDPOINT_URL, s.ARTIFACTS_S3_REGION,
            s.ARTIFACTS_S3_ACCESS_KEY_ID, s.ARTIFACTS_S3_SECRET_ACCESS_KEY, s.ARTIFACTS_S3_PREFIX,
            s.ARTIFACTS_S3_ADDRESSING, s.ARTIFACTS_S3_PRESIGN, s.ARTIFACTS_S3_PRESIGN_SECONDS,
            s.ARTIFACTS_S3_MULTIPART_THRESHOLD, s.ARTIFACTS_S3_MULTIPART_CHUNKSIZE,
            s.ARTIFACTS_S3_TIMEOUT,
        )  # fmt: skip

    def __repr__(self) -> str:  # never the credentials
        return f"S3Config(bucket={self.bucket!r}, endpoint_url={self.endpoint_url!r})"


class S3Store:
    kind = "s3"

    def __init__(self, conf: S3Config):
        self.conf = conf
        self.transfer = TransferConfig(
            multipart_threshold=conf.multipart_threshold,
            multipart_chunksize=conf.multipart_chunksize,
            max_concurrency=4,
        )
        session = boto3.session.Session()
        credentials: dict[str, Any] = {}
        if conf.access_key_id:  # else boto3's own chain (environment, instance role, ...)
            credentials = {
                "aws_access_key_id": conf.access_key_id,
                "aws_secret_access_key": conf.secret_access_key,
            }
        self.client = session.client(
            "s3",
            endpoint_url=conf.endpoint_url or None,
            region_name=conf.region or None,
            config=Config(
                connect_timeout=conf.timeout,
                read_timeout=conf.timeout,
                retries={"max_attempts": 3, "mode": "standard"},
                signature_version="s3v4",
                s3={"addressing_style": conf.addressing},
            ),
            **credentials,
        )

    def describe(self) -> str:
        where = redact_credentials(self.conf.endpoint_url) if self.conf.endpoint_url else "AWS"
        return f"s3://{self.conf.bucket}/{self.conf.prefix} at {where}"

    def _key(self, key: str) -> str:
        return f"{self.conf.prefix}{key}"

    def _error(self, what: str, exc: Exception) -> StoreError:
        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            said = f"{err.get('Code', '?')}: {err.get('Message') or 'no message'}"
        else:
            said = f"{exc.__class__.__name__}: {exc}"
        for secret in (self.conf.secret_access_key, self.conf.access_key_id):
            if secret:
                said = said.replace(secret, "****")
        return StoreError(f"the artifact store ({self.describe()}) failed to {what}: {said}")

    def staging_dir(self) -> Path:
        path = Path(settings.VAR_DIR) / "tmp" / "artifacts"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def put(self, key: str, path: Path) -> None:
        try:
            self.client.upload_file(
                str(path), self.conf.bucket, self._key(key), Config=self.transfer
            )
        except (BotoCoreError, ClientError, S3UploadFailedError) as exc:
            raise self._error(f"store {key}", exc) from None
        finally:
            Path(path).unlink(missing_ok=True)

    def _call(self, what: str, call) -> Any:
        """``call()``; None when the object (not the bucket) is missing, StoreError when S3
        refused or did not answer."""
        try:
            return call()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in MISSING:
                return None
            raise self._error(what, exc) from None
        except BotoCoreError as exc:
            raise self._error(what, exc) from None

    def open(self, key: str) -> Chunks | None:
        c, bucket = self.client, self.conf.bucket
        answer = self._call(f"read {key}", lambda: c.get_object(Bucket=bucket, Key=self._key(key)))
        if answer is None:
            return None
        body = answer["Body"]
        return Chunks(body, int(answer.get("ContentLength") or 0), body.read)

    @contextlib.contextmanager
    def fetch(self, key: str) -> Iterator[Path | None]:
        fd, tmp = tempfile.mkstemp(dir=self.staging_dir(), prefix=".fetch-", suffix=".tar.gz")
        os.close(fd)
        c, bucket, conf = self.client, self.conf.bucket, self.transfer

        def download():
            c.download_file(bucket, self._key(key), tmp, Config=conf)
            return True

        try:
            yield Path(tmp) if self._call(f"read {key}", download) else None
        finally:
            Path(tmp).unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        c, bucket = self.client, self.conf.bucket
        self._call(f"delete {key}", lambda: c.delete_object(Bucket=bucket, Key=self._key(key)))

    def download_url(self, key: str, filename: str) -> str | None:
        """A presigned GET (with the download's file name) when presigning is on."""
        if not self.conf.presign:
            return None
        return self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.conf.bucket,
                "Key": self._key(key),
                "ResponseContentDisposition": f'attachment; filename="{filename}"',
                "ResponseContentType": "application/gzip",
            },
            ExpiresIn=self.conf.presign_seconds,
        )


Store = LocalStore | S3Store
_S3: dict[S3Config, S3Store] = {}
_LOCK = threading.Lock()


def current() -> Store:
    """The store the settings name (one boto3 client per configuration and process)."""
    if not settings.ARTIFACTS_S3_BUCKET:
        return LocalStore(Path(settings.PIPELINES_ARTIFACT_DIR))
    conf = S3Config.from_settings()
    with _LOCK:
        if conf not in _S3:
            _S3[conf] = S3Store(conf)
        return _S3[conf]
