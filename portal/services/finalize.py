"""Finalize: assemble the parts into the final object, mark the file stored, emit file.stored.

Three steps, so that no storage call runs inside a transaction:

1. plain reads check the session can be finalized (all parts present, still
   active) and read the part keys in order — no lock: a counted part never
   changes while its session is active, and step 3 checks the session again
   under its lock; an activity older than a minute is renewed first;
2. the adapter assembles the final object outside any transaction, at a key
   derived from the file id, so a retry or a concurrent call overwrites the same
   object with the same bytes;
3. a short transaction locks the session and, only if it is still
   active, marks file and session and writes the outbox event.

Concurrent calls may both assemble, but step 3 lets exactly one of them commit:
one stored file and one event; the others answer with that result.
"""

import re
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from portal.exceptions import (
    ChecksumMismatch,
    Conflict,
    ObjectMissing,
    SessionGone,
    StorageError,
    UploadRejected,
)
from portal.logs import get_logger
from portal.metrics import counters
from portal.models import UploadFile, UploadPart, UploadSession
from portal.services.outbox import emit_event
from portal.services.policies import expiry_for, resolve_policy
from portal.services.sessions import (
    FileInfo,
    SessionStatus,
    compact_ranges,
    describe_session,
    ensure_accepts_writes,
    get_owned_session,
)
from portal.storage import StorageAdapter, StoredObject, get_storage

log = get_logger(__name__)

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
# Finalize renews an activity older than this; the TTL is hours, assembly seconds.
ACTIVITY_RESOLUTION = timedelta(minutes=1)
CHECKSUM_MISMATCH = "checksum_mismatch"


def normalise_sha256(value) -> str | None:
    """A client's SHA-256 as lowercase hex; ``UploadRejected`` if it is not one."""
    if value is None:
        return None
    if not isinstance(value, str) or not SHA256_HEX.match(value.lower()):
        raise UploadRejected("sha256 must be 64 hexadecimal characters.", code="invalid_sha256")
    return value.lower()


def finalize_session(
    *,
    user,
    session_id,
    sha256: str | None = None,
    storage: StorageAdapter | None = None,
    now=None,
) -> SessionStatus:
    """Complete a session whose parts have all arrived. Idempotent.

    ``sha256`` (lowercase hex), when given, must match the assembled file; if it
    does not, the session fails with ``failure_reason="checksum_mismatch"``.
    """
    session = store_session(
        user=user, session_id=session_id, sha256=sha256, storage=storage, now=now
    )
    return describe_session(session)


@dataclass(frozen=True)
class Streamed:
    """The SHA-256 of exactly the bytes of ``part_keys``, in order, hashed as they were
    written (tus, when one PATCH carries a whole upload)."""

    sha256: str
    part_keys: tuple[str, ...]


def store_session(
    *,
    user,
    session_id,
    sha256: str | None = None,
    streamed: Streamed | None = None,
    storage: StorageAdapter | None = None,
    now=None,
    read: UploadSession | None = None,
) -> UploadSession:
    """``finalize_session`` without describing the result: the session as committed.

    When the session's parts are exactly ``streamed.part_keys`` (no other writer
    counted one), ``streamed.sha256`` is the file's and the file is not read back.
    ``read`` is the session as the caller has just read it for ``user`` (with its
    file), to save reading it again; step 3 checks it under the lock all the same.
    """
    now = now or timezone.now()
    storage = storage or get_storage()
    session, rows = _claim(user=user, session_id=session_id, sha256=sha256, now=now, read=read)
    if session.status == UploadSession.Status.COMPLETE:
        return session
    part_keys = tuple(key for key, _ in rows)
    known = streamed.sha256 if streamed and streamed.part_keys == part_keys else ""
    if len(rows) == 1:  # a one-part file is its part: the part's hash is the file's
        known = rows[0][1]
    try:
        assembled = storage.assemble_final(
            session.file_id, session.file.original_filename, list(part_keys), sha256=known
        )
    except ObjectMissing as exc:
        _forget_missing_part(session, exc, now=now)
    try:
        return _commit(user, session, assembled, sha256=sha256, storage=storage, now=now)
    except SessionGone:
        # Aborted or failed meanwhile: the object belongs to no stored file.
        _delete_final(storage, assembled.key)
        raise


def _claim(*, user, session_id, sha256, now, read) -> tuple[UploadSession, list[tuple[str, str]]]:
    """The checked session and its parts' ``(temp key, sha256)`` in order."""
    session = read or get_owned_session(user=user, session_id=session_id)
    if session.status == UploadSession.Status.COMPLETE:
        _check_client_sha256(session.file, sha256)
        return session, []
    ensure_accepts_writes(session, now=now)
    if session.last_activity_at < now - ACTIVITY_RESOLUTION:
        # Finalizing is activity: the TTL cannot run out while the file is assembled.
        # (A part counted in the last minute, as tus's last one just was, renewed it.)
        UploadSession.objects.filter(
            pk=session.pk, status__in=UploadSession.ACTIVE_STATUSES
        ).update(last_activity_at=now, updated_at=now)
    rows = list(
        UploadPart.objects.filter(session=session)
        .order_by("part_number")
        .values_list("part_number", "temp_storage_key", "sha256")
    )
    received = {number for number, _, _ in rows}
    missing = [n for n in range(1, session.total_parts + 1) if n not in received]
    if missing:
        ranges = compact_ranges(missing)
        raise Conflict(
            f"Parts {ranges} have not been received.", code="missing_parts", missing_parts=ranges
        )
    return session, [(key, digest) for _, key, digest in rows]


def _forget_missing_part(session: UploadSession, missing: ObjectMissing, *, now):
    """A part whose object is gone no longer counts: remove its row (and uncount it), so
    the client re-sends it, and answer 409 ``missing_parts`` naming it."""
    with transaction.atomic():
        locked = UploadSession.objects.select_for_update().get(pk=session.pk)
        part = UploadPart.objects.filter(session=locked, temp_storage_key=missing.key).first()
        if part is None:
            raise missing  # not one of this session's parts: nothing the client can repair
        part.delete()
        UploadSession.objects.filter(pk=locked.pk).update(
            completed_parts=F("completed_parts") - 1,
            bytes_received=F("bytes_received") - part.size_bytes,
            updated_at=now,
        )
    log.warning(
        "part.object_missing",
        session_id=str(session.pk),
        part_number=part.part_number,
        storage_key=missing.key,
    )
    raise Conflict(
        f"Part {part.part_number} is missing from storage; send it again, then finalize.",
        code="missing_parts",
        missing_parts=str(part.part_number),
    )


def _commit(user, session, assembled: StoredObject, *, sha256, storage, now) -> UploadSession:
    mismatch = bool(sha256) and sha256 != assembled.sha256
    with transaction.atomic():
        locked = get_owned_session(user=user, session_id=session.pk, for_update=True)
        if locked.status == UploadSession.Status.COMPLETE:
            # A concurrent finalize committed first; its object is the one we overwrote
            # with the same bytes.
            _check_client_sha256(locked.file, sha256)
            return locked
        ensure_accepts_writes(locked, now=now)
        if mismatch:
            _fail_checksum(locked, now=now)
        else:
            _store(locked, assembled, user=user, storage=storage, now=now)
    if mismatch:
        log.warning(
            "session.failed",
            session_id=str(locked.pk),
            file_id=str(locked.file_id),
            failure_reason=CHECKSUM_MISMATCH,
        )
        counters.session_finished(CHECKSUM_MISMATCH)
        _delete_final(storage, assembled.key)
        raise ChecksumMismatch(
            "The assembled file does not match the sha256 sent; the session has failed.",
            code=CHECKSUM_MISMATCH,
            sha256=assembled.sha256,
        )
    log.info(
        "file.stored",
        session_id=str(locked.pk),
        file_id=str(locked.file_id),
        size_bytes=assembled.size,
        storage_key=assembled.key,
    )
    counters.session_finished("complete")
    # As _store wrote them: the row needs no second read.
    locked.status, locked.finished_at, locked.updated_at = UploadSession.Status.COMPLETE, now, now
    return locked


def _store(session: UploadSession, assembled: StoredObject, *, user, storage, now) -> None:
    # Read after the session's lock (so current), with its policy for the expiry.
    upload_file = UploadFile.objects.select_related("retention_policy").get(pk=session.file_id)
    session.file = upload_file
    upload_file.sha256 = assembled.sha256
    upload_file.size_bytes = assembled.size
    upload_file.status = UploadFile.Status.STORED
    upload_file.storage_backend = storage.backend
    upload_file.storage_bucket = storage.bucket
    upload_file.storage_key = assembled.key
    upload_file.stored_at = now
    upload_file.retention_policy = upload_file.retention_policy or resolve_policy(None)
    upload_file.expires_at = expiry_for(upload_file.retention_policy, now)
    upload_file.save(
        update_fields=[
            "sha256",
            "size_bytes",
            "status",
            "storage_backend",
            "storage_bucket",
            "storage_key",
            "stored_at",
            "retention_policy",
            "expires_at",
            "updated_at",
        ]
    )
    UploadSession.objects.filter(pk=session.pk).update(
        status=UploadSession.Status.COMPLETE, finished_at=now, updated_at=now
    )
    emit_event(
        event_type="file.stored",
        aggregate_type="upload_file",
        aggregate_id=upload_file.pk,
        idempotency_key=f"file.stored:{upload_file.pk}",
        body={
            "file": FileInfo.of(upload_file).as_dict(),
            "actor": {"user_id": user.pk, "username": user.get_username()},
        },
        now=now,
    )


def _fail_checksum(session: UploadSession, *, now) -> None:
    UploadSession.objects.filter(pk=session.pk).update(
        status=UploadSession.Status.FAILED,
        failure_reason=CHECKSUM_MISMATCH,
        finished_at=now,
        updated_at=now,
    )
    UploadFile.objects.filter(pk=session.file_id).update(
        status=UploadFile.Status.FAILED, updated_at=now
    )


def _check_client_sha256(upload_file: UploadFile, sha256: str | None) -> None:
    if sha256 and sha256 != upload_file.sha256:
        raise ChecksumMismatch(
            "The stored file does not match the sha256 sent.",
            code=CHECKSUM_MISMATCH,
            sha256=upload_file.sha256,
        )


def _delete_final(storage: StorageAdapter, key: str) -> None:
    try:
        storage.delete_final(key)
    except StorageError as exc:
        log.warning("file.delete_failed", storage_key=key, error=str(exc))
