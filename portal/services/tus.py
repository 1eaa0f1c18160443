"""tus 1.0 uploads (SPEC §13) over the same sessions, parts and finalize as the JSON API.

A tus upload is an ``UploadSession`` with a ``TusUpload`` row. The tus offset maps
onto parts of the session's chunk size: bytes ``[(n-1)·chunk, n·chunk)`` are part
``n``. A PATCH body is cut at those boundaries; every whole part is counted through
``chunks.accept_part`` exactly as a ``PUT …/parts/n`` would be, and the bytes past
the last whole part (the *tail*) are written as one more temp object (a temp-part
key of the next part number) that the ``TusUpload`` row points at. The next PATCH
reads that tail back in front of its own bytes, so ``offset = bytes_received +
tail_size`` is always exactly what storage durably holds (PEP 0024; the tail's rules are
in ``portal.services.tus_tails``). A PATCH with ``Upload-Checksum``
writes all its objects first and counts none of them unless the body matches.
Reaching ``Upload-Length`` finalizes (``finalize.store_session``), with the SHA-256 of a
PATCH that carried the whole upload, so the file is not read back to hash it.
Concatenation moves complete partials' part rows onto one new session (PEP 0024).
"""

from dataclasses import replace
from typing import BinaryIO

import pydantic
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from portal import conf
from portal.db import unique_row
from portal.exceptions import (
    Conflict,
    LengthRequired,
    NotFound,
    PartTooLarge,
    TooLarge,
    UploadRejected,
)
from portal.logs import get_logger
from portal.models import TusUpload, UploadFile, UploadPart, UploadSession
from portal.schemas import parts_needed
from portal.services.chunks import discard, expected_part_size, release_connections
from portal.services.finalize import Streamed, store_session
from portal.services.sessions import (
    SessionRequest,
    abort_session,
    create_session,
    ensure_accepts_writes,
    expires_at,
    get_owned_session,
    parse_session_id,
)
from portal.services.tus_body import PatchBody, Piece
from portal.services.tus_messages import (
    CHECKSUM_ALGORITHMS,
    Checksum,
    TusChecksumMismatch,
    TusForbidden,
    TusMetadata,
    TusState,
)
from portal.services.tus_tails import Checkpoints, commit_piece, open_tail, tail_is_current
from portal.storage import StorageAdapter, StoredObject, get_storage

log = get_logger(__name__)

# -- state -----------------------------------------------------------------


def _get(user, upload_id, *, for_update=False) -> tuple[UploadSession, TusUpload]:
    if for_update:
        session = get_owned_session(user=user, session_id=upload_id, for_update=True)
        tus = unique_row(TusUpload.objects.select_for_update().filter(session=session))
    else:  # one query: the ownership filter of get_owned_session, with the tus row joined
        session = unique_row(
            UploadSession.objects.owned_by(user)
            .select_related("file", "tus")
            .filter(pk=parse_session_id(upload_id))
        )
        if session is None:
            raise NotFound("No such upload session.")
        tus = getattr(session, "tus", None)
    if tus is None:  # a JSON-API session is not a tus upload
        raise NotFound("No such upload session.")
    return session, tus


def _offset(session: UploadSession, tus: TusUpload) -> int:
    return session.bytes_received + (tus.tail_size if tail_is_current(session, tus) else 0)


def _state(session: UploadSession, tus: TusUpload) -> TusState:
    return TusState(
        upload_id=str(session.pk),
        offset=_offset(session, tus),
        length=session.total_size_bytes,
        metadata=tus.metadata,
        expires_at=expires_at(session),
        is_partial=tus.is_partial,
        is_final=tus.is_final,
        complete=session.status == UploadSession.Status.COMPLETE,
    )


def get_upload(*, user, upload_id, storage: StorageAdapter | None = None, now=None) -> TusState:
    """HEAD: the durable offset. An upload holding all its bytes is finalized first, so
    a crash between the last part and the stored file heals on the client's resume."""
    session, tus = _get(user, upload_id)
    if session.status != UploadSession.Status.COMPLETE:
        ensure_accepts_writes(session, now=now or timezone.now())  # 410 when gone
    state = _state(session, tus)
    if not state.complete and not tus.is_partial and state.offset == state.length:
        store_session(user=user, session_id=session.pk, storage=storage, now=now, read=session)
        session, tus = _get(user, upload_id)
        state = _state(session, tus)
    return state


# -- creation --------------------------------------------------------------


def create_upload(
    *, user, length: int | None, metadata: TusMetadata, is_partial: bool, now=None
) -> TusState:
    """POST: a new session for ``length`` bytes (its chunk size is the portal's default)."""
    if length is None:
        raise UploadRejected("Upload-Length is required.", code="invalid_upload_length")
    request = _session_request(
        original_filename=metadata.filename,
        content_type=metadata.filetype or None,
        total_size_bytes=length,
        retention_class=metadata.retention_class or None,
    )
    with transaction.atomic():
        status = create_session(user=user, request=request, now=now)
        TusUpload.objects.create(
            session_id=status.session_id, metadata=metadata.raw, is_partial=is_partial
        )
    return TusState(
        upload_id=status.session_id,
        offset=0,
        length=status.total_size_bytes,
        metadata=metadata.raw,
        expires_at=status.expires_at,
        is_partial=is_partial,
        is_final=False,
        complete=False,
    )


def _session_request(**fields) -> SessionRequest:
    """The JSON API's session request model; its refusals keep their 400/413."""
    try:
        return SessionRequest.model_validate(fields)
    except pydantic.ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        field = ".".join(str(part) for part in first["loc"]) or "metadata"
        raise UploadRejected(f"{field}: {first['msg']}.", code="invalid_field") from None


def create_final(
    *, user, partial_ids: list[str], metadata: TusMetadata, storage=None, now=None
) -> TusState:
    """POST with ``Upload-Concat: final;…``: one file from complete partial uploads."""
    now = now or timezone.now()
    if not partial_ids:
        raise UploadRejected("Upload-Concat final names no uploads.", code="invalid_concat")
    ids = [parse_session_id(value) for value in partial_ids]
    if len(set(ids)) != len(ids):
        raise UploadRejected("Upload-Concat names an upload twice.", code="invalid_concat")
    total = sum(_complete_partial(user, pk, now=now).total_size_bytes for pk in ids)
    request = _session_request(
        original_filename=metadata.filename,
        content_type=metadata.filetype or None,
        total_size_bytes=total,
    )
    with transaction.atomic():
        status = create_session(user=user, request=request, now=now)
        final = UploadSession.objects.select_for_update().get(pk=status.session_id)
        number = 0
        for pk in ids:
            partial = _complete_partial(user, pk, now=now, for_update=True)
            UploadPart.objects.filter(session=partial).update(
                session=final, part_number=F("part_number") + number
            )
            number += partial.total_parts
        UploadSession.objects.filter(pk=final.pk).update(
            total_parts=number,
            completed_parts=number,
            bytes_received=total,
            status=UploadSession.Status.IN_PROGRESS,
            last_activity_at=now,
        )
        # The partials' bytes now belong to the final session; their emptied rows go.
        UploadFile.objects.filter(session__pk__in=ids).delete()
        TusUpload.objects.create(session=final, metadata=metadata.raw, is_final=True)
    log.info("tus.concatenated", session_id=str(final.pk), partials=len(ids), size_bytes=total)
    store_session(user=user, session_id=final.pk, storage=storage, now=now)
    return get_upload(user=user, upload_id=final.pk)


def _complete_partial(user, pk, *, now, for_update=False) -> UploadSession:
    session, tus = _get(user, pk, for_update=for_update)
    ensure_accepts_writes(session, now=now)
    if not tus.is_partial:
        raise UploadRejected(
            f"Upload {pk} is not a partial upload.", code="invalid_concat", upload_id=str(pk)
        )
    if session.bytes_received != session.total_size_bytes:
        raise UploadRejected(
            f"Partial upload {pk} is not complete.", code="partial_incomplete", upload_id=str(pk)
        )
    return session


# -- PATCH -----------------------------------------------------------------


def append(
    *,
    user,
    upload_id,
    offset: int,
    stream: BinaryIO,
    content_length: int | None,
    checksum: Checksum | None = None,
    storage: StorageAdapter | None = None,
    now=None,
) -> TusState:
    """PATCH at ``offset``: stream the body into parts and a tail; finalize at the end."""
    now = now or timezone.now()
    storage = storage or get_storage()
    session, tus = _get(user, upload_id)
    if tus.is_final:
        raise TusForbidden("A final upload takes no PATCH.", code="final_upload")
    ensure_accepts_writes(session, now=now)
    current = _offset(session, tus)
    if offset != current:
        raise Conflict(
            f"Upload-Offset is {offset}; the upload is at {current}.",
            code="offset_mismatch",
            offset=current,
        )
    if content_length is None:
        raise LengthRequired("A Content-Length header is required.", code="length_required")
    if current + content_length > session.total_size_bytes:
        raise TooLarge(
            f"The body would pass Upload-Length ({session.total_size_bytes}).",
            code="upload_length_exceeded",
        )
    if offset == 0 and content_length == session.total_size_bytes:
        session = _widen_parts(session, tus, one_part=storage.reports_written)
    # A file of one part is hashed as that part is written (finalize takes its digest).
    whole = (
        content_length == session.total_size_bytes
        and session.total_parts > 1
        and not tus.is_partial
    )
    digest = CHECKSUM_ALGORITHMS[checksum.algorithm]() if checksum else None
    body = PatchBody(stream, content_length, digest, whole=whole)
    written: list[tuple[int, StoredObject, str]] = []  # (part, object, its tail): uncounted
    try:
        _stream_pieces(session, tus, body, written, storage, commit=checksum is None, now=now)
        if checksum is not None:
            if body.ended or body.hash.digest() != checksum.digest:
                raise TusChecksumMismatch(
                    f"The body does not match its {checksum.algorithm} Upload-Checksum.",
                    code="checksum_mismatch",
                )
            while written:
                number, stored, base = written[0]
                commit_piece(session, tus, number, stored, base=base, storage=storage, now=now)
                written.pop(0)
    finally:
        if written:
            discard(storage, *(stored.key for _, stored, _ in written))
    session, tus = _get(user, upload_id)
    state = _state(session, tus)
    if not tus.is_partial and state.offset == state.length and not state.complete:
        # Trusted only if the counted parts are exactly this body's (no PATCH raced it).
        streamed = Streamed(body.sha256.hexdigest(), tuple(body.keys)) if body.sha256 else None
        store_session(
            user=user,
            session_id=session.pk,
            streamed=streamed,
            storage=storage,
            now=now,
            read=session,
        )
        state = replace(state, expires_at=None, complete=True)
    return state


def _widen_parts(session: UploadSession, tus: TusUpload, *, one_part: bool) -> UploadSession:
    """Larger parts for an upload whose first PATCH carries it all: one part when
    ``one_part`` (the storage reports a part as it grows) and the upload is not a
    partial one, else parts of ``PORTAL_CHUNK_SIZE_MAX``.

    Each part costs a row, a locked commit and a check, and on the filesystem a file
    of one part becomes its final object by a hard link, where several are copied
    into it: a large upload sent in one body goes faster in fewer, larger parts (PEP
    0024). A part larger than ``PORTAL_CHUNK_SIZE_MAX`` is recorded as the tail at
    each such step while it is written (``tus_tails.Checkpoints``), so a server that dies
    loses no more of it than of a part of that size. Partial uploads keep parts of at
    most that size, as concatenation joins their parts. A client that sends small
    PATCHes keeps the default size: each of its PATCHes rewrites the tail in front
    of its bytes, and a larger part would make that tail larger. Done only before
    any part or tail exists, under the session lock; a PATCH racing this one with
    the old size then fails its count (409) instead of mixing part sizes. An upload
    that larger parts would not cut into fewer (one that fits one part already)
    is left as it is, without the transaction.
    """
    one_part = one_part and not tus.is_partial
    chunk_size = session.total_size_bytes if one_part else conf.chunk_size_max()
    total_parts = parts_needed(session.total_size_bytes, chunk_size)
    if total_parts >= session.total_parts or session.completed_parts or tus.tail_key:
        return session
    with transaction.atomic():
        locked = UploadSession.objects.select_for_update().get(pk=session.pk)
        tail_key = TusUpload.objects.filter(pk=tus.pk).values_list("tail_key", flat=True).get()
        if (
            locked.completed_parts
            or locked.chunk_size_bytes != session.chunk_size_bytes
            or tail_key
        ):
            return session  # another PATCH moved first: this one's count will say 409
        UploadSession.objects.filter(pk=session.pk).update(
            chunk_size_bytes=chunk_size, total_parts=total_parts
        )
    session.chunk_size_bytes, session.total_parts = chunk_size, total_parts
    return session


def _stream_pieces(session, tus, body: PatchBody, written, storage, *, commit: bool, now) -> None:
    """Cut the body at part boundaries into new objects (counted now when ``commit``)."""
    number = session.completed_parts + 1
    tail = tus.tail_size if tail_is_current(session, tus) else 0
    head_key = tus.tail_key if tail else ""
    while body.left > 0 and not body.ended:
        expected = expected_part_size(session, number)
        head = open_tail(session, tus, head_key, storage) if head_key else None
        # The body may take minutes to arrive: hold no database connection meanwhile
        # (as receive_part), or slow clients take all of them.
        release_connections()
        piece = Piece(head, tail, body, expected - tail)
        # A body with a checksum counts nothing, so records no tail, before it matches.
        checkpoints = Checkpoints(session, tus, number, head_key, tail, storage, now=now)
        try:
            stored = storage.write_temp_part(
                session.pk,
                number,
                piece,
                max_bytes=expected,
                on_written=checkpoints if commit and storage.reports_written else None,
            )
        except PartTooLarge:  # the old tail and the body are bounded: cannot happen
            raise UploadRejected("The body does not fit the upload.") from None
        finally:
            if piece.head is not None:
                piece.head.close()
        written.append((number, stored, head_key))
        body.keys.append(stored.key)
        if commit:
            commit_piece(session, tus, number, stored, base=head_key, storage=storage, now=now)
            written.pop()
        if stored.size < expected:
            return
        number, tail, head_key = number + 1, 0, ""


# -- termination -----------------------------------------------------------


def terminate(*, user, upload_id, storage: StorageAdapter | None = None, now=None) -> None:
    """DELETE: abort the session (its parts go to cleanup) and delete its tail now."""
    session, tus = _get(user, upload_id)
    abort_session(user=user, session_id=session.pk, now=now)
    if tus.tail_key:
        TusUpload.objects.filter(pk=tus.pk).update(tail_key="", tail_size=0, tail_part_number=0)
        discard(storage or get_storage(), tus.tail_key)
