"""Helpers shared by the retention tests: stored files with real objects, and clocks."""

import io
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from portal.exceptions import ObjectMissing
from portal.models import RetentionPolicy, UploadFile, new_id
from portal.services.policies import expiry_for
from portal.storage import keys
from tests.factories import make_user

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
DAY = timedelta(days=1)
NOTICE = timedelta(hours=48)


def policy(code="general") -> RetentionPolicy:
    return RetentionPolicy.objects.get(code=code)


def stored_file(storage, *, code="general", stored_at=NOW - 40 * DAY, user=None, body=b"doc"):
    """A stored file of class ``code`` whose final object really exists in ``storage``."""
    retention = policy(code)
    upload_file = UploadFile.objects.create(
        original_filename="report.pdf",
        content_type="application/pdf",
        size_bytes=len(body),
        uploaded_by=user or make_user(),
        retention_policy=retention,
    )
    part = storage.write_temp_part(upload_file.pk, 1, io.BytesIO(body), max_bytes=len(body))
    final = storage.assemble_final(upload_file.pk, upload_file.original_filename, [part.key])
    storage.delete_many([part.key])
    UploadFile.objects.filter(pk=upload_file.pk).update(
        status=UploadFile.Status.STORED,
        sha256=final.sha256,
        storage_backend=storage.backend,
        storage_bucket=storage.bucket,
        storage_key=final.key,
        stored_at=stored_at,
        expires_at=expiry_for(retention, stored_at),
    )
    upload_file.refresh_from_db()
    return upload_file


def exists(storage, key) -> bool:
    try:
        storage.open(key).close()
    except ObjectMissing:
        return False
    return True


def bulk_stored_files(
    *, user, count, code="general", stored_at, root=None, final_prefix="files/", notified_at=None
):
    """``count`` stored files created with bulk inserts (notified at ``notified_at``, if
    given); with ``root`` (a filesystem storage root) each one's final object is created
    too, empty, with plain ``os`` calls."""
    retention = policy(code)
    files = []
    for _ in range(count):
        file_id = new_id()
        key = keys.final_key(final_prefix, file_id, "f.bin")
        files.append(
            UploadFile(
                id=file_id,
                original_filename="f.bin",
                size_bytes=1,
                uploaded_by=user,
                status=UploadFile.Status.STORED,
                storage_backend="filesystem",
                storage_key=key,
                stored_at=stored_at,
                retention_policy=retention,
                expires_at=expiry_for(retention, stored_at),
                expiring_notified_at=notified_at,
            )
        )
        if root is not None:
            path = Path(root) / key
            path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
    UploadFile.objects.bulk_create(files, batch_size=5000)
    return files
