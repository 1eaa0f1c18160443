"""Storage in an S3 bucket (AWS or any S3-compatible server).

The boto3 client comes from django-storages (``storages.backends.s3.S3Storage``), so
the bucket, endpoint, region and credentials are read from django-storages' own
settings (``AWS_STORAGE_BUCKET_NAME``, ``AWS_S3_ENDPOINT_URL``, ``AWS_S3_REGION_NAME``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, and ``AWS_S3_CLIENT_CONFIG`` or
``AWS_S3_ADDRESSING_STYLE`` if a host sets them) exactly as a host's media storage
would read them. Our timeouts and retry limits are merged over that client
configuration, so no call can hang a worker.

Two clients, both created lazily on first use and safe to share between threads:
one for the work, with patient timeouts and a few retries, and a fast-fail one for
``check()``, which a readiness probe calls under a short time budget.

Every botocore error is translated here: a 404 becomes what the method means
(``ObjectMissing`` on open, "deleted" on delete) and anything else becomes
``StorageUnavailable`` (or a batch's per-key error): no boto3 error reaches a service.
"""

import hashlib
import io
import threading
from collections.abc import Iterable, Iterator
from datetime import datetime

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from storages.backends.s3 import S3Storage as DjangoStoragesS3

from portal import conf
from portal.exceptions import InvalidStorageKey, ObjectMissing, StorageUnavailable
from portal.logs import get_logger
from portal.storage import base, keys
from portal.storage.base import COPY_BUFFER_SIZE, DELETE_BATCH_SIZE, DeleteResult, StoredObject
from portal.storage.s3_streams import UPLOAD_BUFFER_SIZE, ChainedReader, MeteredReader, fill

log = get_logger(__name__)

S3_ERRORS = (ClientError, BotoCoreError)
MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})

# botocore's "max_attempts" counts retries after the first try; "total_max_attempts"
# counts every try, which is what these limits mean.
WORK_CLIENT_CONFIG = Config(
    connect_timeout=5,
    read_timeout=60,
    retries={"total_max_attempts": 3, "mode": "standard"},
)


def _client_source(config: Config) -> DjangoStoragesS3:
    """A django-storages backend whose client has ``config`` merged over the host's own."""
    source = DjangoStoragesS3()
    source.client_config = source.client_config.merge(config)
    return source


def _error_code(exc: Exception) -> str:
    return exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""


def _is_missing(exc: Exception) -> bool:
    return _error_code(exc) in MISSING_CODES


def _reason(exc: Exception) -> str:
    return _error_code(exc) or exc.__class__.__name__


class S3Storage:
    backend = "s3"
    reports_written = False

    def __init__(
        self,
        *,
        temp_prefix,
        final_prefix,
        bucket=None,
        client=None,
        check_connect_timeout=0.5,
        check_read_timeout=0.5,
    ):
        self.temp_prefix = keys.normalise_prefix(temp_prefix)
        self.final_prefix = keys.normalise_prefix(final_prefix)
        self.bucket = bucket or conf.s3_bucket()
        # Settings are resolved now; the clients (and their connections) on first use.
        self._work_source = _client_source(WORK_CLIENT_CONFIG)
        self._check_source = _client_source(
            Config(
                connect_timeout=check_connect_timeout,
                read_timeout=check_read_timeout,
                retries={"total_max_attempts": 1, "mode": "standard"},
            )
        )
        self._client = client
        self._check_client = None
        self._lock = threading.Lock()

    # -- clients --------------------------------------------------------------

    @property
    def client(self):
        """The boto3 client of every operation but ``check()``."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._work_source.connection.meta.client
        return self._client

    @property
    def check_client(self):
        """A client that gives up after one short attempt, for readiness probes."""
        if self._check_client is None:
            with self._lock:
                if self._check_client is None:
                    self._check_client = self._check_source.connection.meta.client
        return self._check_client

    # -- writing --------------------------------------------------------------

    def write_temp_part(self, session_id, part_number, stream, *, max_bytes, on_written=None):
        key = keys.validate_key(
            keys.temp_part_key(self.temp_prefix, session_id, part_number), self.temp_prefix
        )
        reader = MeteredReader(stream, max_bytes=max_bytes)
        self._upload(key, reader)
        return StoredObject(key=key, size=reader.size, sha256=reader.sha256)

    def _upload(self, key: str, reader) -> None:
        """Stream ``reader`` to ``key``, one buffer at a time; on any failure keep nothing."""
        buffer = fill(reader)
        if len(buffer) < UPLOAD_BUFFER_SIZE:
            # The whole stream fitted in one buffer: a single PutObject.
            try:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=buffer)
            except S3_ERRORS as exc:
                self._forget(key)
                raise StorageUnavailable(f"cannot write {key}: {_reason(exc)}") from exc
            return
        upload_id = self._start_multipart(key)
        completed = False
        try:
            etags = []
            while buffer:
                response = self.client.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=len(etags) + 1,
                    Body=buffer,
                )
                etags.append(response["ETag"])
                buffer = None  # let the sent buffer go before the next one fills
                buffer = fill(reader)
            self._complete_multipart(key, upload_id, etags)
            completed = True
        except S3_ERRORS as exc:
            raise StorageUnavailable(f"cannot write {key}: {_reason(exc)}") from exc
        finally:
            # Whatever stopped the upload (S3, PartTooLarge, a client that went away
            # mid-stream), the uploaded pieces must not linger.
            if not completed:
                self._abort_multipart(key, upload_id)

    def assemble_final(self, file_id, filename, part_keys, *, sha256=""):
        """Copy the temp parts, in order, into the final object, inside S3.

        Several parts become one multipart upload of ``UploadPartCopy`` calls and one
        part a ``CopyObject``, so no byte passes through the portal for the copy. The
        SHA-256 of the whole file cannot be composed from the parts' hashes, so unless
        the caller knows it (``sha256``) it comes from one streamed read of the final
        object. If S3 refuses the copy because a part other than the last is under
        its 5 MiB minimum, the parts are streamed through instead.
        """
        key = keys.final_key(self.final_prefix, file_id, filename)
        keys.validate_key(key, self.final_prefix)
        for part_key in part_keys:
            keys.validate_key(part_key, self.temp_prefix)
        if len(part_keys) == 1:
            self._copy_object(part_keys[0], key)
        elif not part_keys or not self._copy_multipart(part_keys, key):
            # Nothing to copy (an empty file), or parts S3 will not compose.
            reader = MeteredReader(ChainedReader(self, part_keys), max_bytes=None)
            self._upload(key, reader)
            return StoredObject(key=key, size=reader.size, sha256=reader.sha256)
        size, digest = (self._size(key), sha256) if sha256 else self._hash(key)
        return StoredObject(key=key, size=size, sha256=digest)

    def _copy_object(self, source: str, key: str) -> None:
        try:
            self.client.copy_object(
                Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": source}
            )
        except S3_ERRORS as exc:
            if _is_missing(exc):
                raise ObjectMissing(source) from exc
            raise StorageUnavailable(f"cannot assemble {key}: {_reason(exc)}") from exc

    def _copy_multipart(self, part_keys: list[str], key: str) -> bool:
        """Compose ``key`` from ``part_keys``; False if S3 finds a part too small to copy."""
        upload_id = self._start_multipart(key)
        source = None  # the part being copied, named if S3 finds it missing
        try:
            etags = []
            for number, part_key in enumerate(part_keys, start=1):
                source = part_key
                response = self.client.upload_part_copy(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource={"Bucket": self.bucket, "Key": part_key},
                )
                etags.append(response["CopyPartResult"]["ETag"])
            source = None
            self._complete_multipart(key, upload_id, etags)
        except S3_ERRORS as exc:
            self._abort_multipart(key, upload_id)
            if _error_code(exc) == "EntityTooSmall":
                return False
            if _is_missing(exc):
                raise ObjectMissing(source or key) from exc
            raise StorageUnavailable(f"cannot assemble {key}: {_reason(exc)}") from exc
        return True

    def _size(self, key: str) -> int:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"]
        except S3_ERRORS as exc:
            raise StorageUnavailable(f"cannot read {key}: {_reason(exc)}") from exc

    def _hash(self, key: str) -> tuple[int, str]:
        digest = hashlib.sha256()
        size = 0
        with self.open(key) as body:
            while chunk := body.read(COPY_BUFFER_SIZE):
                size += len(chunk)
                digest.update(chunk)
        return size, digest.hexdigest()

    def _start_multipart(self, key: str) -> str:
        try:
            return self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        except S3_ERRORS as exc:
            raise StorageUnavailable(f"cannot write {key}: {_reason(exc)}") from exc

    def _complete_multipart(self, key: str, upload_id: str, etags: list[str]) -> None:
        self.client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={
                "Parts": [{"ETag": etag, "PartNumber": n} for n, etag in enumerate(etags, 1)]
            },
        )

    def _abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except S3_ERRORS as exc:
            # A bucket lifecycle rule for incomplete multipart uploads removes what is left.
            log.warning("storage.abort_failed", key=key, reason=_reason(exc))

    def _forget(self, key: str) -> None:
        """Delete ``key`` after a failed write that may or may not have landed."""
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except S3_ERRORS as exc:
            log.warning("storage.delete_failed", key=key, reason=_reason(exc))

    # -- reading --------------------------------------------------------------

    def open(self, key):
        keys.validate_key(key, self.temp_prefix, self.final_prefix)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except S3_ERRORS as exc:
            if _is_missing(exc):
                raise ObjectMissing(key) from exc
            raise StorageUnavailable(f"cannot open {key}: {_reason(exc)}") from exc
        return _ObjectReader(key, response["Body"])

    def iter_temp_objects(self, *, older_than: datetime) -> Iterator[StoredObject]:
        for page in self._pages(self.temp_prefix, base.LIST_PAGE_SIZE):
            # Every key under the prefix, whatever its shape: the caller decides
            # which are the portal's (cleanup counts the others as foreign).
            yield from (obj for obj in page if obj.last_modified < older_than)

    def iter_final_pages(self, *, page_size=base.LIST_PAGE_SIZE) -> Iterator[list[StoredObject]]:
        return self._pages(self.final_prefix, page_size)

    def _pages(self, prefix: str, page_size: int) -> Iterator[list[StoredObject]]:
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size}
            )
            for page in pages:
                if items := page.get("Contents"):
                    yield [StoredObject(i["Key"], i["Size"], "", i["LastModified"]) for i in items]
        except S3_ERRORS as exc:
            raise StorageUnavailable(f"cannot list {prefix}: {_reason(exc)}") from exc

    # -- deleting -------------------------------------------------------------

    def delete_many(self, keys_to_delete: Iterable[str]) -> DeleteResult:
        return self._delete_keys(keys_to_delete, self.temp_prefix)

    def delete_final_many(self, keys_to_delete: Iterable[str]) -> DeleteResult:
        return self._delete_keys(keys_to_delete, self.final_prefix)

    def _delete_keys(self, keys_to_delete: Iterable[str], prefix: str) -> DeleteResult:
        deleted, errors, batch = [], {}, []
        for key in keys_to_delete:
            try:
                batch.append(keys.validate_key(key, prefix))
            except InvalidStorageKey as exc:
                errors[key] = str(exc)
            if len(batch) == DELETE_BATCH_SIZE:
                self._delete_batch(batch, deleted, errors)
                batch = []
        if batch:
            self._delete_batch(batch, deleted, errors)
        return DeleteResult(deleted=tuple(deleted), errors=errors)

    def _delete_batch(self, batch: list[str], deleted: list[str], errors: dict) -> None:
        try:
            response = self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
            )
        except S3_ERRORS as exc:
            # The whole batch failed: report every key so the caller can count and go on.
            errors.update(dict.fromkeys(batch, _reason(exc)))
            return
        failed = {
            error["Key"]: error.get("Code") or error.get("Message", "error")
            for error in response.get("Errors", ())
            if error.get("Code") not in MISSING_CODES
        }
        errors.update(failed)
        deleted.extend(key for key in batch if key not in failed)

    def delete_final(self, key):
        keys.validate_key(key, self.final_prefix)
        if errors := self.delete_final_many([key]).errors:
            raise StorageUnavailable(f"cannot delete {key}: {errors[key]}")

    # -- readiness ------------------------------------------------------------

    def check(self):
        if not self.bucket:
            raise StorageUnavailable("no bucket configured (AWS_STORAGE_BUCKET_NAME)")
        try:
            self.check_client.head_bucket(Bucket=self.bucket)
        except S3_ERRORS as exc:
            raise StorageUnavailable(f"bucket {self.bucket} unavailable: {_reason(exc)}") from exc


class _ObjectReader(io.RawIOBase):
    """An object's body as a binary file; read errors become ``StorageUnavailable``."""

    def __init__(self, key: str, body):
        self._key = key
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            chunk = self._body.read(len(buffer))
        except S3_ERRORS as exc:
            raise StorageUnavailable(f"cannot read {self._key}: {_reason(exc)}") from exc
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()
