import io
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from portal.exceptions import ChecksumMismatch, Conflict
from portal.models import OutboxDelivery, OutboxEvent, UploadFile, UploadPart, UploadSession
from portal.schemas import SessionRequest
from portal.services.chunks import receive_part
from portal.services.finalize import Streamed, finalize_session, store_session
from portal.services.sessions import create_session
from tests.api.conftest import sha256
from tests.factories import make_user

CHUNK = 4


def upload(data: bytes, *, user=None, parts=None):
    user = user or make_user("bob")
    status = create_session(
        user=user,
        request=SessionRequest(
            original_filename="notes.txt",
            content_type="text/plain",
            total_size_bytes=len(data),
            chunk_size_bytes=CHUNK,
        ),
    )
    numbers = parts or range(1, status.total_parts + 1)
    for number in numbers:
        body = data[(number - 1) * CHUNK : number * CHUNK]
        receive_part(
            user=user,
            session_id=status.session_id,
            part_number=number,
            stream=io.BytesIO(body),
            content_length=len(body),
        )
    return user, status.session_id


@pytest.fixture(autouse=True)
def _small_chunks(settings):
    settings.PORTAL_CHUNK_SIZE_MIN = CHUNK


@pytest.mark.django_db
def test_stored_file_and_event_payload(fs_storage, settings):
    settings.PORTAL_RUNNER_ENDPOINT = "http://127.0.0.1:9/events"
    data = b"hello, portal!"
    user, session_id = upload(data)

    result = finalize_session(user=user, session_id=session_id)

    upload_file = UploadFile.objects.get()
    assert result.file.sha256 == upload_file.sha256 == sha256(data)
    assert (upload_file.status, upload_file.size_bytes) == ("stored", len(data))
    assert upload_file.storage_key == f"files/{upload_file.pk}/notes.txt"
    assert upload_file.stored_at is not None
    session = UploadSession.objects.get()
    assert (session.status, session.finished_at) == ("complete", upload_file.stored_at)
    event = OutboxEvent.objects.get()
    assert (event.aggregate_type, event.aggregate_id) == ("upload_file", str(upload_file.pk))
    assert event.idempotency_key == f"file.stored:{upload_file.pk}"
    assert event.payload == {
        "event_type": "file.stored",
        "event_id": str(event.pk),
        "occurred_at": event.payload["occurred_at"],
        "file": {
            "id": str(upload_file.pk),
            "filename": "notes.txt",
            "content_type": "text/plain",
            "size_bytes": len(data),
            "sha256": sha256(data),
            "storage": {"backend": "filesystem", "bucket": "", "key": upload_file.storage_key},
            # Retention (SPEC §10): the default class, 30 days from storing.
            "retention": {"class": "general", "expires_at": upload_file.expires_at.isoformat()},
        },
        "actor": {"user_id": user.pk, "username": "bob"},
    }
    assert OutboxDelivery.objects.get().destination == "runner"


@pytest.mark.django_db
def test_missing_parts_are_named(fs_storage):
    user, session_id = upload(b"x" * 30, parts=[2, 3])

    with pytest.raises(Conflict) as refused:
        finalize_session(user=user, session_id=session_id)

    assert refused.value.details == {"missing_parts": "1,4-8"}


@pytest.mark.django_db
def test_a_wrong_sha256_on_a_complete_session_changes_nothing(fs_storage):
    user, session_id = upload(b"abcdefgh")
    finalize_session(user=user, session_id=session_id)

    with pytest.raises(ChecksumMismatch):
        finalize_session(user=user, session_id=session_id, sha256="0" * 64)

    assert UploadSession.objects.get().status == "complete"
    assert UploadFile.objects.get().status == "stored"


@pytest.mark.django_db
def test_a_streamed_sha256_is_taken_only_for_exactly_the_parts_it_covers(fs_storage):
    data = b"abcdefgh"  # two parts
    user, session_id = upload(data)
    keys = tuple(
        UploadPart.objects.order_by("part_number").values_list("temp_storage_key", flat=True)
    )
    other_user, other_id = upload(data, user=make_user("alice"))

    # Someone else's parts (a racing writer counted one): the file is hashed again.
    store_session(user=other_user, session_id=other_id, streamed=Streamed("e" * 64, keys[::-1]))
    # These parts, in order: the digest is taken as it is, the file not read back.
    store_session(user=user, session_id=session_id, streamed=Streamed("e" * 64, keys))

    assert UploadFile.objects.get(session__pk=other_id).sha256 == sha256(data)
    assert UploadFile.objects.get(session__pk=session_id).sha256 == "e" * 64


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_finalize_stores_one_file_and_one_event(fs_storage):
    data = os.urandom(10 * CHUNK)
    user, session_id = upload(data)
    start = threading.Barrier(4)

    def finalize():
        start.wait()
        try:
            return finalize_session(user=user, session_id=session_id)
        finally:
            connection.close()

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: finalize(), range(4)))

    assert {r.file.sha256 for r in results} == {sha256(data)}
    assert {r.status for r in results} == {"complete"}
    assert OutboxEvent.objects.count() == 1
    with fs_storage.open(UploadFile.objects.get().storage_key) as stored:
        assert stored.read() == data
