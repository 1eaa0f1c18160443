"""Plain factory functions for the portal's models. Keyword arguments override fields."""

import hashlib
import io
import itertools
import uuid
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from portal.models import UploadFile, UploadPart, UploadSession, new_id
from portal.services.outbox import emit_event

_seq = itertools.count(1)
MiB = 1024 * 1024


def make_user(username=None, **fields):
    return get_user_model().objects.create_user(username=username or f"user{next(_seq)}", **fields)


def make_file(*, uploaded_by=None, **fields):
    defaults = {
        "original_filename": f"file-{next(_seq)}.bin",
        "content_type": "application/octet-stream",
        "size_bytes": 3 * 5 * MiB,
    }
    return UploadFile.objects.create(
        uploaded_by=uploaded_by or make_user(), **{**defaults, **fields}
    )


def make_session(
    *, status=UploadSession.Status.IN_PROGRESS, user=None, parts=0, storage=None, **fields
):
    """A session of ``status``; ``parts`` received parts, written to ``storage`` when given.

    Terminal sessions get ``finished_at`` (default: ``last_activity_at``) unless passed.
    """
    user = user or make_user()
    now = timezone.now()
    chunk = fields.pop("chunk_size_bytes", 5 * MiB)
    total_parts = fields.pop("total_parts", max(parts, 3))
    last_activity_at = fields.pop("last_activity_at", now)
    if status in UploadSession.TERMINAL_STATUSES:
        fields.setdefault("finished_at", last_activity_at)
    upload_file = make_file(uploaded_by=user, size_bytes=chunk * total_parts)
    session = UploadSession.objects.create(
        file=upload_file,
        created_by=user,
        status=status,
        chunk_size_bytes=chunk,
        total_size_bytes=chunk * total_parts,
        total_parts=total_parts,
        last_activity_at=last_activity_at,
        created_at=fields.pop("created_at", last_activity_at - timedelta(minutes=1)),
        **fields,
    )
    for number in range(1, parts + 1):
        make_part(session, number, storage=storage)
    if parts:
        UploadSession.objects.filter(pk=session.pk).update(
            completed_parts=parts, bytes_received=parts * 16
        )
        session.refresh_from_db()
    return session


def make_part(session, part_number, *, storage=None, body=None):
    """A received part. With ``storage`` its object is really written; else a made-up key."""
    body = body if body is not None else f"part {part_number} of {session.pk}".encode().ljust(16)
    if storage is not None:
        stored = storage.write_temp_part(
            session.pk, part_number, io.BytesIO(body), max_bytes=len(body)
        )
        key, digest = stored.key, stored.sha256
    else:
        key, digest = (
            f"tmp/{session.pk}/{part_number:06d}-fake.part",
            hashlib.sha256(body).hexdigest(),
        )
    return UploadPart.objects.create(
        session=session,
        part_number=part_number,
        size_bytes=len(body),
        sha256=digest,
        temp_storage_key=key,
    )


def emit_file_stored(**body):
    """A ``file.stored`` event with its deliveries, as finalize would emit it."""
    return emit_event(
        event_type="file.stored",
        body=body,
        aggregate_type="file",
        aggregate_id=new_id(),
        idempotency_key=str(uuid.uuid4()),
    )
