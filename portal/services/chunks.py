"""Receiving parts: stream to temp storage first, then count the part in a short transaction.

The object is written outside any transaction under a key unique to this write.
Only then is the session row locked and checked (active, within its TTL), so a
part racing ``cleanup_stale_sessions`` either keeps the session alive or is
refused. Whenever the part does not count (refused, or an identical re-send),
the object just written is deleted again, after the transaction.
"""

from dataclasses import dataclass
from typing import BinaryIO

from django.db import IntegrityError, connections, transaction
from django.db.models import F
from django.utils import timezone

from portal.db import unique_row
from portal.exceptions import (
    ChecksumMismatch,
    Conflict,
    LengthRequired,
    PartTooLarge,
    StorageError,
    TooLarge,
    UploadRejected,
)
from portal.logs import get_logger
from portal.metrics import counters
from portal.models import UploadPart, UploadSession
from portal.services.sessions import ensure_accepts_writes, get_owned_session
from portal.storage import StorageAdapter, StoredObject, get_storage

log = get_logger(__name__)


@dataclass(frozen=True)
class PartReceipt:
    session_id: str
    part_number: int
    size_bytes: int
    sha256: str
    created: bool  # False for an identical re-send, which changes nothing

    def as_dict(self) -> dict:
        return {
            "session_id": self.session_id,
            "part_number": self.part_number,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
        }


def expected_part_size(session: UploadSession, part_number: int) -> int:
    """Every part but the last is exactly one chunk; the last holds the remainder."""
    if part_number < session.total_parts:
        return session.chunk_size_bytes
    return session.total_size_bytes - (session.total_parts - 1) * session.chunk_size_bytes


def receive_part(
    *,
    user,
    session_id,
    part_number: int,
    stream: BinaryIO,
    content_length: int | None,
    sha256: str | None = None,
    storage: StorageAdapter | None = None,
    now=None,
) -> PartReceipt:
    """Store part ``part_number`` of a session from ``stream`` (``content_length`` bytes).

    ``sha256`` (hex), when given, must match the body or the part is refused.
    """
    now = now or timezone.now()
    storage = storage or get_storage()
    session = get_owned_session(user=user, session_id=session_id)
    # Cheap refusals first, before a byte is read or written.
    ensure_accepts_writes(session, now=now)
    if not 1 <= part_number <= session.total_parts:
        raise UploadRejected(
            f"Part number must be between 1 and {session.total_parts}.",
            code="invalid_part_number",
        )
    expected = expected_part_size(session, part_number)
    if content_length is None:
        raise LengthRequired("A Content-Length header is required.", code="length_required")
    if content_length > expected:
        raise TooLarge(
            f"Part {part_number} must be {expected} bytes; the body is {content_length}.",
            code="part_too_large",
        )
    if content_length != expected:
        raise UploadRejected(
            f"Part {part_number} must be {expected} bytes; the body is {content_length}.",
            code="wrong_part_size",
        )

    # The body may take minutes to arrive (or stall until the idle timeout): it must
    # not hold a database connection meanwhile, or slow clients exhaust the server's.
    release_connections()
    try:
        stored = storage.write_temp_part(session.pk, part_number, stream, max_bytes=expected)
    except PartTooLarge:
        raise TooLarge(
            f"Part {part_number} must be {expected} bytes; the body is longer.",
            code="part_too_large",
        ) from None
    return accept_part(session, part_number, stored, sha256=sha256, storage=storage, now=now)


def accept_part(
    session: UploadSession,
    part_number: int,
    stored: StoredObject,
    *,
    sha256: str | None = None,
    storage: StorageAdapter,
    now,
) -> PartReceipt:
    """Count an object just written for part ``part_number``, or discard it.

    The one place a written part is checked (size, ``sha256``) and counted; both the
    JSON API and tus (``portal.services.tus``) go through it.
    """
    expected = expected_part_size(session, part_number)
    counted = False
    try:
        if stored.size != expected:
            raise UploadRejected(
                f"Part {part_number} must be {expected} bytes; {stored.size} arrived.",
                code="wrong_part_size",
            )
        if sha256 and sha256 != stored.sha256:
            raise ChecksumMismatch(
                f"Part {part_number} does not match the SHA-256 sent with it.",
                code="checksum_mismatch",
            )
        receipt = _count_part(session, part_number, stored, now=now)
        counted = receipt.created
    finally:
        if not counted:
            discard(storage, stored.key)
    log.info(
        "part.received",
        session_id=str(session.pk),
        file_id=str(session.file_id),
        part_number=part_number,
        size_bytes=stored.size,
        duplicate=not receipt.created,
    )
    counters.part_received(receipt)
    return receipt


def release_connections() -> None:
    """Close this request's idle database connections; the next query opens a fresh one."""
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()


def _count_part(session, part_number, stored: StoredObject, *, now) -> PartReceipt:
    try:
        return _record_part(session, part_number, stored, now=now)
    except IntegrityError:
        # SQLite has no row locks: a concurrent send of the same part inserted first.
        # Its row is there now, so the second attempt answers duplicate or conflict.
        return _record_part(session, part_number, stored, now=now)


def _record_part(session, part_number, stored: StoredObject, *, now) -> PartReceipt:
    with transaction.atomic():
        locked = UploadSession.objects.select_for_update().get(pk=session.pk)
        ensure_accepts_writes(locked, now=now)
        if locked.chunk_size_bytes != session.chunk_size_bytes:  # tus widened its parts
            raise Conflict(
                f"Part {part_number} was cut for a part size the upload no longer has.",
                code="part_conflict",
            )
        # Parts are counted in the transaction that records them: none counted, none to read.
        existing = (
            unique_row(UploadPart.objects.filter(session=locked, part_number=part_number))
            if locked.completed_parts
            else None
        )
        if existing is not None and existing.sha256 != stored.sha256:
            raise Conflict(
                f"Part {part_number} was already received with different content.",
                code="part_conflict",
            )
        if existing is None:
            UploadPart.objects.create(
                session=locked,
                part_number=part_number,
                size_bytes=stored.size,
                sha256=stored.sha256,
                temp_storage_key=stored.key,
                created_at=now,
            )
            UploadSession.objects.filter(pk=locked.pk).update(
                completed_parts=F("completed_parts") + 1,
                bytes_received=F("bytes_received") + stored.size,
                status=UploadSession.Status.IN_PROGRESS,
                last_activity_at=now,
            )
    # An identical re-send has the same size and hash as the part already counted.
    return PartReceipt(
        session_id=str(session.pk),
        part_number=part_number,
        size_bytes=stored.size,
        sha256=stored.sha256,
        created=existing is None,
    )


def discard(storage: StorageAdapter, *keys: str) -> None:
    """Delete temp objects that do not count; a failure leaves them to the orphan sweep."""
    try:
        result = storage.delete_many(keys)
    except StorageError as exc:
        log.warning("part.discard_failed", keys=list(keys), error=str(exc))
        return
    for key, error in result.errors.items():
        log.warning("part.discard_failed", key=key, error=error)
