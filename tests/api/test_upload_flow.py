"""The upload API over HTTP (Django's test client) on both storage adapters."""

import os

import pytest

from portal.exceptions import ObjectMissing
from portal.models import OutboxEvent, UploadFile, UploadPart, UploadSession
from tests.api.conftest import chunks_of, sha256, temp_objects

pytestmark = pytest.mark.django_db


def read_all(storage, key: str) -> bytes:
    with storage.open(key) as stored:
        return stored.read()


def start(uploader, data: bytes, chunk: int, **fields):
    response = uploader.create(
        original_filename="report.bin",
        content_type="application/octet-stream",
        total_size_bytes=len(data),
        chunk_size_bytes=chunk,
        **fields,
    )
    assert response.status_code == 201, response.json()
    return response.json()


def test_parts_in_any_order_are_assembled_in_order_and_stored(uploader, storage, chunk_size):
    data = os.urandom(2 * chunk_size + 3)
    session = start(uploader, data, chunk_size)
    assert session["total_parts"] == 3
    assert session["status"] == "init"
    parts = chunks_of(data, chunk_size)

    for number in (3, 1, 2):
        response = uploader.put_part(session["session_id"], number, parts[number])
        assert response.status_code == 201, response.json()
    response = uploader.finalize(session["session_id"], sha256=sha256(data))

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "complete"
    assert body["file"]["sha256"] == sha256(data)
    assert body["file"]["size_bytes"] == len(data)
    assert body["file"]["storage"]["backend"] == storage.backend
    assert read_all(storage, body["file"]["storage"]["key"]) == data
    event = OutboxEvent.objects.get(event_type="file.stored")
    assert event.payload["file"] == body["file"]
    assert event.payload["actor"] == {"user_id": uploader.user.pk, "username": "uploader"}


def test_status_reports_received_parts_as_ranges_and_counters(uploader, storage, chunk_size):
    data = os.urandom(5 * chunk_size)
    session = start(uploader, data, chunk_size)
    parts = chunks_of(data, chunk_size)
    for number in (1, 2, 4):
        uploader.put_part(session["session_id"], number, parts[number])

    body = uploader.status(session["session_id"]).json()

    assert body["status"] == "in_progress"
    assert body["received_parts"] == "1-2,4"
    assert body["completed_parts"] == 3
    assert body["bytes_received"] == 3 * chunk_size
    assert body["expires_at"] is not None
    assert body["file"] is None


def test_identical_resend_is_a_no_op_and_different_content_conflicts(uploader, storage, chunk_size):
    data = os.urandom(2 * chunk_size)
    session = start(uploader, data, chunk_size)
    first = chunks_of(data, chunk_size)[1]
    uploader.put_part(session["session_id"], 1, first)

    again = uploader.put_part(session["session_id"], 1, first)
    different = uploader.put_part(session["session_id"], 1, bytes(len(first)))

    assert again.status_code == 200
    assert different.status_code == 409
    assert different.json()["error"]["code"] == "part_conflict"
    assert UploadSession.objects.get().completed_parts == 1
    assert temp_objects(storage) == [UploadPart.objects.get().temp_storage_key]


def test_finalize_is_idempotent_with_one_file_and_one_event(uploader, storage, chunk_size):
    data = os.urandom(chunk_size + 1)
    session = start(uploader, data, chunk_size)
    for number, part in chunks_of(data, chunk_size).items():
        uploader.put_part(session["session_id"], number, part)

    first = uploader.finalize(session["session_id"])
    second = uploader.finalize(session["session_id"])

    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert OutboxEvent.objects.count() == 1
    assert UploadFile.objects.get().status == "stored"


def test_finalize_with_wrong_sha256_fails_the_session_and_keeps_no_file(
    uploader, storage, chunk_size
):
    data = os.urandom(chunk_size + 1)
    session = start(uploader, data, chunk_size)
    for number, part in chunks_of(data, chunk_size).items():
        uploader.put_part(session["session_id"], number, part)

    response = uploader.finalize(session["session_id"], sha256="0" * 64)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "checksum_mismatch"
    upload = UploadSession.objects.select_related("file").get()
    assert (upload.status, upload.failure_reason) == ("failed", "checksum_mismatch")
    assert upload.file.status == "failed"
    assert not OutboxEvent.objects.exists()
    with pytest.raises(ObjectMissing):
        storage.open(f"files/{upload.file_id}/report.bin")
    assert uploader.finalize(session["session_id"]).status_code == 410


def test_abort_refuses_every_later_write_and_leaves_parts_for_cleanup(
    uploader, storage, chunk_size
):
    data = os.urandom(2 * chunk_size)
    session = start(uploader, data, chunk_size)
    parts = chunks_of(data, chunk_size)
    uploader.put_part(session["session_id"], 1, parts[1])

    assert uploader.abort(session["session_id"]).status_code == 204

    put = uploader.put_part(session["session_id"], 2, parts[2])
    finalize = uploader.finalize(session["session_id"])
    abort_again = uploader.abort(session["session_id"])
    for response in (put, finalize, abort_again):
        assert response.status_code == 410
        assert response.json()["error"]["code"] == "session_aborted"
    upload = UploadSession.objects.select_related("file").get()
    assert upload.status == "aborted"
    assert upload.finished_at is not None
    assert upload.file.status == "failed"
    # Only part 1, still referenced by its row until cleanup deletes both.
    assert temp_objects(storage) == [UploadPart.objects.get().temp_storage_key]
    assert uploader.status(session["session_id"]).json()["status"] == "aborted"
