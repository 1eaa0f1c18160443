"""Bad input: each refusal has its status and error code, and writes nothing."""

import base64
import hashlib
import json
import os
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from portal.models import ApiToken, UploadFile, UploadPart, UploadSession
from portal.services.tokens import revoke_api_token
from tests.api.conftest import UploadClient, chunks_of, sha256, temp_objects
from tests.factories import make_session

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("small_limits")]

CHUNK = 8  # PORTAL_CHUNK_SIZE in SMALL_LIMITS


def error_of(response, status: int) -> str:
    assert response.status_code == status, response.content
    assert set(response.json()["error"]) >= {"code", "message"}
    return response.json()["error"]["code"]


def open_session(uploader, total=3 * CHUNK - 2) -> str:
    response = uploader.create(original_filename="a.bin", total_size_bytes=total)
    assert response.status_code == 201
    return response.json()["session_id"]


def assert_no_parts(storage):
    assert not UploadPart.objects.exists()
    assert temp_objects(storage) == []
    assert UploadSession.objects.filter(completed_parts=0, bytes_received=0).count() == (
        UploadSession.objects.count()
    )


# -- authentication ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "missing_token"),
        ("Bearer ", "missing_token"),
        ("Basic dXNlcjpwYXNz", "missing_token"),
        ("Bearer ptk_not-a-real-token", "invalid_token"),
    ],
)
def test_requests_without_a_valid_token_are_401(uploader, fs_storage, authorization, code):
    session_id = open_session(uploader)
    anonymous = UploadClient(None)
    headers = {"Authorization": authorization} if authorization else {}

    responses = [
        anonymous.request("POST", "/uploads/sessions", body=b"{}", **headers),
        anonymous.request("GET", f"/uploads/sessions/{session_id}", **headers),
        anonymous.request(
            "PUT",
            f"/uploads/sessions/{session_id}/parts/1",
            body=b"x" * CHUNK,
            content_type="application/octet-stream",
            **headers,
        ),
        anonymous.request("POST", f"/uploads/sessions/{session_id}/finalize", **headers),
        anonymous.request("DELETE", f"/uploads/sessions/{session_id}", **headers),
    ]

    for response in responses:
        assert error_of(response, 401) == code
        assert response["WWW-Authenticate"].startswith("Bearer")
    assert UploadSession.objects.get().status == "init"
    assert_no_parts(fs_storage)


def test_revoked_token_is_401(uploader, fs_storage):
    revoke_api_token(api_token=ApiToken.objects.get(user=uploader.user))

    response = uploader.create(original_filename="a.bin", total_size_bytes=10)

    assert error_of(response, 401) == "revoked_token"
    assert not UploadSession.objects.exists()


def test_inactive_users_token_is_401(uploader, fs_storage):
    uploader.user.is_active = False
    uploader.user.save()

    assert error_of(uploader.create(original_filename="a.bin", total_size_bytes=10), 401) == (
        "invalid_token"
    )


def test_another_users_session_is_404_for_every_method(uploader, other_uploader, fs_storage):
    session_id = open_session(uploader)

    responses = [
        other_uploader.status(session_id),
        other_uploader.put_part(session_id, 1, b"x" * CHUNK),
        other_uploader.finalize(session_id),
        other_uploader.abort(session_id),
    ]

    for response in responses:
        assert error_of(response, 404) == "not_found"
    assert UploadSession.objects.get().status == "init"
    assert_no_parts(fs_storage)


@pytest.mark.parametrize("session_id", ["not-a-uuid", "0190a0b4-0000-7000-8000-000000000000"])
def test_unknown_or_malformed_session_id_is_404(uploader, fs_storage, session_id):
    for response in (
        uploader.status(session_id),
        uploader.put_part(session_id, 1, b"x" * CHUNK),
        uploader.finalize(session_id),
        uploader.abort(session_id),
    ):
        assert error_of(response, 404) == "not_found"
    assert_no_parts(fs_storage)


# -- creating a session -------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"\xff\xfe", 400, "invalid_json"),
        (b"[1, 2]", 400, "invalid_json"),
        (b"{}", 400, "invalid_field"),
        (json.dumps({"original_filename": "a", "total_size_bytes": "10"}), 400, "invalid_field"),
        (json.dumps({"original_filename": "a", "total_size_bytes": True}), 400, "invalid_field"),
        (json.dumps({"original_filename": "a", "total_size_bytes": 0}), 400, "invalid_field"),
        (json.dumps({"original_filename": "", "total_size_bytes": 10}), 400, "invalid_field"),
        (json.dumps({"original_filename": "a\x00b", "total_size_bytes": 10}), 400, "invalid_field"),
        (b'{"original_filename": "a\\ud800", "total_size_bytes": 10}', 400, "invalid_field"),
        (json.dumps({"original_filename": "a", "total_size_bytes": 10.0}), 400, "invalid_field"),
        (json.dumps({"original_filename": "a", "total_size_bytes": 10**30}), 413, "file_too_large"),
        (
            json.dumps({"original_filename": "a" * 256, "total_size_bytes": 10}),
            400,
            "invalid_field",
        ),
        (
            json.dumps({"original_filename": "a", "total_size_bytes": 10, "x": 1}),
            400,
            "invalid_field",
        ),
        (json.dumps({"original_filename": "a", "total_size_bytes": 1025}), 413, "file_too_large"),
        (
            json.dumps({"original_filename": "a", "total_size_bytes": 10, "chunk_size_bytes": 3}),
            400,
            "invalid_chunk_size",
        ),
        (
            json.dumps({"original_filename": "a", "total_size_bytes": 10, "chunk_size_bytes": 65}),
            400,
            "invalid_chunk_size",
        ),
    ],
)
def test_invalid_session_requests_create_nothing(uploader, fs_storage, body, status, code):
    response = uploader.create(raw_body=body)

    assert error_of(response, status) == code
    assert not UploadSession.objects.exists()
    assert not UploadFile.objects.exists()


def test_more_than_ten_thousand_parts_is_refused(uploader, fs_storage):
    with override_settings(PORTAL_MAX_FILE_SIZE=10**9):
        response = uploader.create(
            original_filename="a", total_size_bytes=4 * 10_000 + 1, chunk_size_bytes=4
        )

    assert error_of(response, 400) == "too_many_parts"
    assert not UploadSession.objects.exists()


def test_same_idempotency_key_returns_the_existing_session(uploader, other_uploader, fs_storage):
    fields = {"original_filename": "a.bin", "total_size_bytes": 20, "idempotency_key": "k-1"}
    first = uploader.create(**fields)
    again = uploader.create(**fields)
    others = other_uploader.create(**fields)
    reused = uploader.create(**{**fields, "total_size_bytes": 21})

    assert (first.status_code, again.status_code, others.status_code) == (201, 200, 201)
    assert again.json()["session_id"] == first.json()["session_id"]
    assert others.json()["session_id"] != first.json()["session_id"]
    assert error_of(reused, 409) == "idempotency_key_reused"
    assert UploadSession.objects.count() == 2


def test_default_chunk_size_and_expiry_are_reported(uploader, fs_storage):
    body = uploader.create(original_filename="a.bin", total_size_bytes=20).json()

    assert (body["chunk_size_bytes"], body["total_parts"], body["status"]) == (CHUNK, 3, "init")
    session = UploadSession.objects.get()
    assert body["expires_at"] == (session.last_activity_at + timedelta(hours=24)).isoformat()


# -- parts --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "body", "status", "code"),
    [
        ("0", b"x" * CHUNK, 400, "invalid_part_number"),
        ("4", b"x" * CHUNK, 400, "invalid_part_number"),
        ("-1", b"x" * CHUNK, 400, "invalid_part_number"),
        ("two", b"x" * CHUNK, 400, "invalid_part_number"),
        ("²", b"x" * CHUNK, 400, "invalid_part_number"),
        ("1", b"x" * (CHUNK - 1), 400, "wrong_part_size"),
        ("3", b"x" * CHUNK, 413, "part_too_large"),  # the last part is 6 bytes
        ("3", b"x" * 5, 400, "wrong_part_size"),
        ("1", b"x" * (CHUNK + 1), 413, "part_too_large"),
        ("1", b"x" * 10_000, 413, "part_too_large"),
        ("1", b"", 411, "length_required"),
    ],
)
def test_bad_parts_are_refused_and_leave_nothing(uploader, fs_storage, number, body, status, code):
    session_id = open_session(uploader)

    response = uploader.put_part(session_id, number, body)

    assert error_of(response, status) == code
    assert_no_parts(fs_storage)
    assert UploadSession.objects.get().status == "init"


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({"X-Part-SHA256": "0" * 64}, 422, "checksum_mismatch"),
        ({"X-Part-SHA256": "not-hex"}, 400, "invalid_sha256"),
        (
            {"Content-Digest": "sha-256=:" + base64.b64encode(b"0" * 32).decode() + ":"},
            422,
            "checksum_mismatch",
        ),
        ({"Content-Digest": "sha-256=:not base64:"}, 400, "invalid_sha256"),
    ],
)
def test_part_checksum_mismatch_is_refused_and_leaves_nothing(
    uploader, storage, headers, status, code
):
    session_id = open_session(uploader)

    response = uploader.put_part(session_id, 1, b"x" * CHUNK, **headers)

    assert error_of(response, status) == code
    assert_no_parts(storage)


@pytest.mark.parametrize("header", ["X-Part-SHA256", "Content-Digest"])
def test_matching_part_checksum_is_accepted(uploader, fs_storage, header):
    session_id = open_session(uploader)
    body = b"x" * CHUNK
    value = (
        sha256(body).upper()
        if header == "X-Part-SHA256"
        else "sha-512=:AAAA:, sha-256=:"
        + base64.b64encode(hashlib.sha256(body).digest()).decode()
        + ":"
    )

    assert uploader.put_part(session_id, 1, body, **{header: value}).status_code == 201


def test_parts_of_a_complete_session_are_409(uploader, fs_storage):
    data = os.urandom(20)
    session_id = open_session(uploader, total=20)
    for number, part in chunks_of(data, CHUNK).items():
        uploader.put_part(session_id, number, part)
    uploader.finalize(session_id)

    assert error_of(uploader.put_part(session_id, 1, data[:CHUNK]), 409) == "session_complete"
    assert error_of(uploader.abort(session_id), 409) == "session_complete"
    assert UploadPart.objects.count() == 3
    assert len(temp_objects(fs_storage)) == 3


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"status": "failed", "failure_reason": "expired"}, "session_expired"),
        ({"status": "failed", "failure_reason": "checksum_mismatch"}, "session_failed"),
        ({"status": "aborted"}, "session_aborted"),
        # Past its TTL but not yet marked by cleanup: refused all the same.
        ({"last_activity_at": timezone.now() - timedelta(hours=25)}, "session_expired"),
    ],
)
def test_writes_to_failed_aborted_or_expired_sessions_are_410(uploader, fs_storage, fields, code):
    session = make_session(user=uploader.user, chunk_size_bytes=CHUNK, **fields)

    assert error_of(uploader.put_part(session.pk, 1, b"x" * CHUNK), 410) == code
    assert error_of(uploader.finalize(session.pk), 410) == code
    assert_no_parts(fs_storage)


# -- finalize ----------------------------------------------------------------------


def test_finalize_with_missing_parts_is_409_naming_them(uploader, fs_storage):
    with override_settings(PORTAL_CHUNK_SIZE=4):
        session_id = open_session(uploader, total=4 * 6)
    uploader.put_part(session_id, 1, b"a" * 4)
    uploader.put_part(session_id, 3, b"c" * 4)

    response = uploader.finalize(session_id)

    assert error_of(response, 409) == "missing_parts"
    assert response.json()["error"]["missing_parts"] == "2,4-6"
    assert "2,4-6" in response.json()["error"]["message"]
    session = UploadSession.objects.select_related("file").get()
    assert (session.status, session.file.status, session.file.sha256) == (
        "in_progress",
        "uploading",
        "",
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{oops", "invalid_json"),
        (b'{"sha256": "xyz"}', "invalid_sha256"),
        (b'{"x": 1}', "invalid_field"),
    ],
)
def test_invalid_finalize_body_is_400(uploader, fs_storage, body, code):
    session_id = open_session(uploader)

    assert error_of(uploader.finalize(session_id, raw_body=body), 400) == code
    assert UploadSession.objects.get().status == "init"


def test_wrong_method_is_405_with_allow(uploader, fs_storage):
    response = uploader.client.get(
        "/uploads/sessions", headers={"Authorization": f"Bearer {uploader.token}"}
    )

    assert error_of(response, 405) == "method_not_allowed"
    assert response["Allow"] == "POST"
