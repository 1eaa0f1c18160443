"""The tail of a tus upload (``portal.services.tus``): the bytes past its last counted
part, one temp object that ``TusUpload`` points at.

A piece a PATCH wrote is counted as a part (``commit_piece``) or becomes the tail
(``record_tail``); a part larger than ``PORTAL_CHUNK_SIZE_MAX`` becomes the tail as it
grows (``Checkpoints``), so that HEAD reports its bytes and they survive a crash. Whoever
replaces the tail deletes the one it replaced, unless that is the piece it records.
"""

from typing import BinaryIO

from django.db import transaction

from portal import conf
from portal.exceptions import Conflict, ObjectMissing
from portal.logs import get_logger
from portal.models import TusUpload, UploadSession
from portal.services.chunks import accept_part, discard, expected_part_size, release_connections
from portal.services.sessions import ensure_accepts_writes
from portal.storage import StoredObject

log = get_logger(__name__)


def tail_is_current(session: UploadSession, tus: TusUpload) -> bool:
    return bool(tus.tail_key) and tus.tail_part_number == session.completed_parts + 1


class Checkpoints:
    """Records part ``number``, while it is written, as the upload's tail each time it
    holds ``PORTAL_CHUNK_SIZE_MAX`` more bytes than recorded (the old tail's size at
    first), so that HEAD reports them and a resume after a crash keeps them."""

    def __init__(self, session, tus, number: int, base: str, base_size: int, storage, *, now):
        self.session, self.tus, self.number, self.now = session, tus, number, now
        self.base, self.storage = base, storage
        self.recorded = base_size
        self.expected = expected_part_size(session, number)

    def __call__(self, key: str, size: int) -> bool:
        """The ``on_written`` of ``write_temp_part``: True when it made ``key`` the tail."""
        if size - self.recorded < conf.chunk_size_max() or size >= self.expected:
            return False
        spent = record_tail(
            self.session, self.tus, self.number, key, size, base=self.base, now=self.now
        )
        self.recorded = size
        release_connections()
        if spent and spent != key:
            discard(self.storage, spent)  # the old tail, read whole by now
        return True


def open_tail(session, tus, key: str, storage) -> BinaryIO:
    """The tail object; if it is gone, forget it and send the client back to the parts."""
    try:
        return storage.open(key)
    except ObjectMissing:
        TusUpload.objects.filter(pk=tus.pk, tail_key=key).update(
            tail_key="", tail_size=0, tail_part_number=0
        )
        log.warning("tus.tail_missing", session_id=str(session.pk), key=key)
        raise Conflict(
            "The stored tail of this upload is gone; resume from Upload-Offset "
            f"{session.bytes_received}.",
            code="offset_mismatch",
            offset=session.bytes_received,
        ) from None


def commit_piece(session, tus, number: int, stored: StoredObject, *, base: str, storage, now):
    """Count a whole part or make ``stored`` the tail (built on ``base``); drop the old tail."""
    spent = ""
    if stored.size == expected_part_size(session, number):
        accept_part(session, number, stored, storage=storage, now=now)
        if tus.tail_key:  # as last read: a PATCH that found and made no tail skips this
            with transaction.atomic():
                spent = locked_tail(tus, up_to=number)
                TusUpload.objects.filter(pk=tus.pk, tail_key=spent).update(
                    tail_key="", tail_size=0, tail_part_number=0
                )
            tus.tail_key = "" if spent else tus.tail_key
    else:
        spent = record_tail(session, tus, number, stored.key, stored.size, base=base, now=now)
    if spent and spent != stored.key:  # the part itself may have been recorded as it grew
        discard(storage, spent)


def record_tail(session, tus, number: int, key: str, size: int, *, base: str, now) -> str:
    """Make ``key`` (``size`` bytes of part ``number``, built on the tail ``base``) the
    tail; returns the tail it replaces. 409 if another PATCH moved the upload on."""
    with transaction.atomic():
        locked = UploadSession.objects.select_for_update().get(pk=session.pk)
        ensure_accepts_writes(locked, now=now)
        spent = locked_tail(tus, up_to=number)
        current = spent if spent and tus.tail_part_number == number else ""
        moved = locked.chunk_size_bytes != session.chunk_size_bytes  # parts widened
        if moved or locked.completed_parts + 1 != number or current not in (base, key):
            raise Conflict("Another PATCH moved the upload on.", code="offset_mismatch")
        TusUpload.objects.filter(pk=tus.pk).update(
            tail_key=key, tail_size=size, tail_part_number=number
        )
        tus.tail_key, tus.tail_size = key, size
        UploadSession.objects.filter(pk=locked.pk).update(last_activity_at=now)
    log.info("tus.tail_stored", session_id=str(session.pk), part_number=number, size_bytes=size)
    return spent


def locked_tail(tus: TusUpload, *, up_to: int) -> str:
    """Lock the tus row; its tail key if that tail is of part ``up_to`` or earlier."""
    row = TusUpload.objects.select_for_update().get(pk=tus.pk)
    tus.tail_part_number = row.tail_part_number
    return row.tail_key if row.tail_key and row.tail_part_number <= up_to else ""
