"""Upload sessions: create (idempotently), describe, abort.

A session is visible only to the user who created it; anyone else gets the same
``NotFound`` as for an id that does not exist, so ids leak nothing.
"""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from portal import conf
from portal.db import iso_sql, unique_row
from portal.exceptions import Conflict, NotFound, SessionGone
from portal.logs import get_logger
from portal.metrics import counters
from portal.models import UploadFile, UploadPart, UploadSession
from portal.schemas import SessionRequest
from portal.services.policies import resolve_policy

log = get_logger(__name__)


@dataclass(frozen=True)
class FileInfo:
    id: str
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    storage_backend: str
    storage_bucket: str
    storage_key: str
    retention_class: str = ""
    retention_expires_at: datetime | None = None

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "filename": self.filename,
            "content_type": self.content_type,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "storage": {
                "backend": self.storage_backend,
                "bucket": self.storage_bucket,
                "key": self.storage_key,
            },
            "retention": {
                "class": self.retention_class or None,
                "expires_at": _iso(self.retention_expires_at),
            },
        }

    @staticmethod
    def sql(row: str, retention_class: str) -> str:
        """PostgreSQL: ``as_dict()`` as a jsonb expression over ``row`` (a relation with
        ``UploadFile``'s columns) and ``retention_class`` (SQL, NULL for none), for
        payloads built in the database. tests/retention/test_payloads.py proves the two
        renderings equal."""

        def column(name):
            return f"{row}.{connection.ops.quote_name(UploadFile._meta.get_field(name).column)}"

        return (
            f"jsonb_build_object('id', {column('id')}::text,"
            f" 'filename', {column('original_filename')},"
            f" 'content_type', {column('content_type')}, 'size_bytes', {column('size_bytes')},"
            f" 'sha256', {column('sha256')}, 'storage', jsonb_build_object("
            f"'backend', {column('storage_backend')}, 'bucket', {column('storage_bucket')},"
            f" 'key', {column('storage_key')}), 'retention', jsonb_build_object("
            f"'class', NULLIF({retention_class}, ''),"
            f" 'expires_at', {iso_sql(column('expires_at'))}))"
        )

    @classmethod
    def of(cls, upload_file, *, retention_class: str | None = None) -> "FileInfo":
        """The info of an ``UploadFile`` or of any row with its field names.

        ``retention_class`` saves the policy lookup where the caller knows it.
        """
        if retention_class is None:
            policy_id = upload_file.retention_policy_id
            retention_class = upload_file.retention_policy.code if policy_id else ""
        return cls(
            id=str(upload_file.pk),
            filename=upload_file.original_filename,
            content_type=upload_file.content_type,
            size_bytes=upload_file.size_bytes,
            sha256=upload_file.sha256,
            storage_backend=upload_file.storage_backend,
            storage_bucket=upload_file.storage_bucket,
            storage_key=upload_file.storage_key,
            retention_class=retention_class,
            retention_expires_at=upload_file.expires_at,
        )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclass(frozen=True)
class SessionStatus:
    """What the API tells a client about one session."""

    session_id: str
    file_id: str
    status: str
    chunk_size_bytes: int
    total_parts: int
    total_size_bytes: int
    completed_parts: int
    bytes_received: int
    received_parts: str
    expires_at: datetime | None
    failure_reason: str
    file: FileInfo | None
    created: bool = False  # True only for the answer that created the session

    def as_dict(self) -> dict:
        return {
            "session_id": self.session_id,
            "file_id": self.file_id,
            "status": self.status,
            "chunk_size_bytes": self.chunk_size_bytes,
            "total_parts": self.total_parts,
            "total_size_bytes": self.total_size_bytes,
            "completed_parts": self.completed_parts,
            "bytes_received": self.bytes_received,
            "received_parts": self.received_parts,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "failure_reason": self.failure_reason,
            "file": self.file.as_dict() if self.file else None,
        }


def compact_ranges(numbers: Iterable[int]) -> str:
    """``[1, 2, 3, 5, 7, 8]`` → ``"1-3,5,7-8"`` (input sorted ascending, no duplicates)."""
    spans: list[list[int]] = []
    for number in numbers:
        if spans and number == spans[-1][1] + 1:
            spans[-1][1] = number
        else:
            spans.append([number, number])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def expires_at(session: UploadSession) -> datetime | None:
    """When an unfinished session becomes stale; None once it is terminal."""
    if session.is_terminal:
        return None
    return session.last_activity_at + conf.session_ttl()


def is_expired(session: UploadSession, *, now: datetime) -> bool:
    """Past its TTL, whether or not cleanup has marked it failed yet."""
    return not session.is_terminal and session.last_activity_at < now - conf.session_ttl()


def ensure_accepts_writes(session: UploadSession, *, now: datetime) -> None:
    """Raise unless ``session`` is active and within its TTL (SPEC §4: 410 / 409)."""
    if session.status == UploadSession.Status.COMPLETE:
        raise Conflict("The session is already complete.", code="session_complete")
    if session.status == UploadSession.Status.ABORTED:
        raise SessionGone("The session was aborted.", code="session_aborted")
    if session.status == UploadSession.Status.FAILED:
        if session.failure_reason == "expired":
            raise SessionGone("The session expired.", code="session_expired")
        raise SessionGone(
            f"The session failed ({session.failure_reason or 'unknown reason'}).",
            code="session_failed",
        )
    if is_expired(session, now=now):
        raise SessionGone("The session expired.", code="session_expired")


def parse_session_id(value) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound("No such upload session.") from None


def get_owned_session(*, user, session_id, for_update: bool = False) -> UploadSession:
    """The session ``session_id`` of ``user`` (locked when ``for_update``); else ``NotFound``."""
    sessions = UploadSession.objects.owned_by(user)
    # Locked without a join: a row joined to a locked one is read from the snapshot
    # taken before the lock was granted, so the file would look as it was before a
    # concurrent commit. Loaded lazily after the lock, it is current.
    sessions = sessions.select_for_update() if for_update else sessions.select_related("file")
    session = unique_row(sessions.filter(pk=parse_session_id(session_id)))
    if session is None:
        raise NotFound("No such upload session.")
    return session


def describe_session(session: UploadSession, *, created: bool = False) -> SessionStatus:
    # Parts are counted in the transaction that records them: none counted, none to read.
    numbers = (
        UploadPart.objects.filter(session=session)
        .order_by("part_number")
        .values_list("part_number", flat=True)
        .iterator()
        if session.completed_parts
        else ()
    )
    stored = session.status == UploadSession.Status.COMPLETE
    return SessionStatus(
        session_id=str(session.pk),
        file_id=str(session.file_id),
        status=session.status,
        chunk_size_bytes=session.chunk_size_bytes,
        total_parts=session.total_parts,
        total_size_bytes=session.total_size_bytes,
        completed_parts=session.completed_parts,
        bytes_received=session.bytes_received,
        received_parts=compact_ranges(numbers),
        expires_at=expires_at(session),
        failure_reason=session.failure_reason,
        file=FileInfo.of(session.file) if stored else None,
        created=created,
    )


def get_session_status(*, user, session_id) -> SessionStatus:
    return describe_session(get_owned_session(user=user, session_id=session_id))


def create_session(*, user, request: SessionRequest, now=None) -> SessionStatus:
    """Open a session for a new file, or return the one opened with the same idempotency key.

    ``request.retention_class`` is a policy code (default: the default policy); an unknown
    one raises ``InvalidRetentionClass`` (400 ``invalid_retention_class``).
    """
    now = now or timezone.now()
    policy = resolve_policy(request.retention_class)
    if request.idempotency_key:
        existing = _session_for_key(user, request)
        if existing is not None:
            return describe_session(existing)
    try:
        # Only a key can collide (the race below): without one, no savepoint to undo to.
        with transaction.atomic(savepoint=bool(request.idempotency_key)):
            upload_file = UploadFile.objects.create(
                original_filename=request.original_filename,
                content_type=request.content_type or "",
                size_bytes=request.total_size_bytes,
                uploaded_by=user,
                retention_policy=policy,
                created_at=now,
            )
            session = UploadSession.objects.create(
                file=upload_file,
                created_by=user,
                chunk_size_bytes=request.chunk_size_bytes,
                total_size_bytes=request.total_size_bytes,
                total_parts=request.total_parts,
                idempotency_key=request.idempotency_key or "",
                last_activity_at=now,
                created_at=now,
            )
    except IntegrityError:
        # A concurrent request with the same key won the unique constraint.
        existing = _session_for_key(user, request) if request.idempotency_key else None
        if existing is None:
            raise
        return describe_session(existing)
    log.info(
        "session.created",
        session_id=str(session.pk),
        file_id=str(upload_file.pk),
        user_id=user.pk,
        total_size_bytes=session.total_size_bytes,
        total_parts=session.total_parts,
    )
    counters.session_opened()
    return describe_session(session, created=True)


def _session_for_key(user, request: SessionRequest) -> UploadSession | None:
    session = (
        UploadSession.objects.owned_by(user)
        .select_related("file")
        .filter(idempotency_key=request.idempotency_key)
        .first()
    )
    if session is not None and not request.matches(session):
        raise Conflict(
            "This idempotency_key was used for a different file.", code="idempotency_key_reused"
        )
    return session


def abort_session(*, user, session_id, now=None) -> UploadSession:
    """Abort an unfinished session; its parts become cleanup candidates."""
    now = now or timezone.now()
    with transaction.atomic():
        session = get_owned_session(user=user, session_id=session_id, for_update=True)
        if session.status == UploadSession.Status.COMPLETE:
            raise Conflict("The session is already complete.", code="session_complete")
        if session.is_terminal:
            ensure_accepts_writes(session, now=now)  # raises the matching 410
        UploadSession.objects.filter(pk=session.pk).update(
            status=UploadSession.Status.ABORTED, finished_at=now
        )
        UploadFile.objects.filter(pk=session.file_id).update(status=UploadFile.Status.FAILED)
    log.info("session.aborted", session_id=str(session.pk), file_id=str(session.file_id))
    counters.session_finished("aborted")
    session.refresh_from_db()
    return session
