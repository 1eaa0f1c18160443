"""Hostile bodies get a 4xx with the error shape, never a 500, and write nothing (SPEC §14)."""

import json
import os
from unittest import mock

import pytest
from django.db import OperationalError

from portal.models import UploadFile, UploadSession
from portal.storage.keys import MAX_NAME_BYTES
from portal.views.bodies import MAX_JSON_BODY_BYTES
from tests.api.conftest import chunks_of

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("small_limits")]


def refused(response, status: int) -> str:
    assert response.status_code == status, response.content
    assert set(response.json()["error"]) >= {"code", "message"}
    assert not UploadSession.objects.exists()
    assert not UploadFile.objects.exists()
    return response.json()["error"]["code"]


def nested(depth: int) -> bytes:
    return b'{"original_filename": ' + b"[" * depth + b"]" * depth + b', "total_size_bytes": 1}'


def test_json_nested_too_deep_to_parse_is_400(uploader, fs_storage):
    body = nested(30_000)
    assert len(body) < MAX_JSON_BODY_BYTES

    assert refused(uploader.create(raw_body=body), 400) == "invalid_json"


def test_json_nested_a_hundred_thousand_levels_is_refused_by_size(uploader, fs_storage):
    assert refused(uploader.create(raw_body=nested(100_000)), 413) == "body_too_large"


def test_huge_json_is_413_before_it_is_parsed(uploader, fs_storage):
    body = json.dumps({"original_filename": "a" * 10 * 1024**2, "total_size_bytes": 1})

    assert refused(uploader.create(raw_body=body), 413) == "body_too_large"


def test_deeply_nested_finalize_body_is_400(uploader, fs_storage):
    session_id = uploader.create(original_filename="a", total_size_bytes=8).json()["session_id"]

    response = uploader.finalize(session_id, raw_body=b"[" * 30_000 + b"]" * 30_000)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    assert UploadSession.objects.get().status == "init"


@pytest.mark.parametrize(
    "fields",
    [
        {"original_filename": "a", "total_size_bytes": None},
        {"original_filename": None, "total_size_bytes": 10},
        {"original_filename": "a", "total_size_bytes": [10]},
        {"original_filename": "a", "total_size_bytes": {"n": 10}},
        {"original_filename": 12, "total_size_bytes": 10},
        {"original_filename": {"a": [1, 2]}, "total_size_bytes": 10},
        {"original_filename": "a", "total_size_bytes": 10, "chunk_size_bytes": "8"},
        {"original_filename": "a", "total_size_bytes": 10, "chunk_size_bytes": 8.5},
        {"original_filename": "a", "total_size_bytes": 10, "idempotency_key": 5},
        {"original_filename": "   ", "total_size_bytes": 10},
    ],
)
def test_wrong_types_are_400_invalid_field(uploader, fs_storage, fields):
    assert refused(uploader.create(**fields), 400) == "invalid_field"


def test_null_optional_fields_mean_their_default(uploader, fs_storage):
    response = uploader.create(
        original_filename="a",
        total_size_bytes=10,
        chunk_size_bytes=None,
        content_type=None,
        idempotency_key=None,
    )

    assert response.status_code == 201
    assert response.json()["chunk_size_bytes"] == 8  # PORTAL_CHUNK_SIZE in SMALL_LIMITS
    assert UploadFile.objects.get().content_type == ""


@pytest.mark.parametrize(
    "content_type",
    [
        "text/html\r\nX-Injected: 1",
        "text/html\nX-Injected: 1",
        "text/html\n",
        "text/html\x00",
        "texthtml",
        "text/",
        "/html",
        "text/html/x",
        "text /html",
        "",
        "téxt/html",
        'text/plain; charset="a\r\nb"',
    ],
)
def test_content_type_that_is_not_a_media_type_is_400(uploader, fs_storage, content_type):
    response = uploader.create(
        original_filename="a", total_size_bytes=10, content_type=content_type
    )

    assert refused(response, 400) == "invalid_field"


@pytest.mark.parametrize(
    "content_type",
    ["application/octet-stream", "text/plain; charset=utf-8", 'text/plain;charset="utf-8"'],
)
def test_media_types_with_parameters_are_accepted(uploader, fs_storage, content_type):
    response = uploader.create(
        original_filename="a", total_size_bytes=10, content_type=content_type
    )

    assert response.status_code == 201
    assert UploadFile.objects.get().content_type == content_type


@pytest.mark.parametrize(
    "filename",
    [
        "文" * 255,  # CJK: 3 bytes a character
        "ü" * 251 + ".pdf",  # 2 bytes a character, with an extension
        "😀" * 255,  # 4 bytes, and no character a filename keeps
        "\u0627" * 250 + ".tar",  # Arabic alef
        "e\u0301" * 126 + ".x",  # combining accents
        "a" * 255,
    ],
)
def test_255_character_filenames_of_any_script_are_stored(uploader, fs_storage, filename):
    data = os.urandom(20)
    session_id = uploader.create(original_filename=filename, total_size_bytes=20).json()[
        "session_id"
    ]
    for number, part in chunks_of(data, 8).items():
        assert uploader.put_part(session_id, number, part).status_code == 201

    response = uploader.finalize(session_id)

    assert response.status_code == 200, response.content
    stored = response.json()["file"]
    assert stored["filename"] == filename  # the original name is kept as metadata
    name = stored["storage"]["key"].rsplit("/", 1)[1]
    assert 0 < len(name.encode()) <= MAX_NAME_BYTES
    with fs_storage.open(stored["storage"]["key"]) as final:
        assert final.read() == data


def test_a_256_character_filename_is_400(uploader, fs_storage):
    assert refused(uploader.create(original_filename="a" * 256, total_size_bytes=10), 400) == (
        "invalid_field"
    )


def test_a_database_that_fails_mid_request_is_a_documented_503(uploader, fs_storage):
    with mock.patch(
        "portal.views.uploads.create_session", side_effect=OperationalError("connection timeout")
    ):
        response = uploader.create(original_filename="a", total_size_bytes=10)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "database_unavailable"
    assert "timeout" not in response.json()["error"]["message"]
