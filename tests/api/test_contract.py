"""Every limit the OpenAPI document states is the one the server enforces.

The limits are read from the served document, not restated here: each is driven
over HTTP at the edge (accepted) and one past it (refused with a documented code).
"""

import pytest
from django.test import override_settings

from portal.models import UploadSession
from tests.api.conftest import openapi_document

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("small_limits")]

BASE = {"original_filename": "a.bin", "total_size_bytes": 64}
# (schema keyword, step from the limit to the first refused value)
KEYWORDS = {"minimum": -1, "maximum": +1, "minLength": -1, "maxLength": +1}


def sample(name: str, size: int):
    """A value of field ``name`` at ``size``: a number, or a string of that many characters."""
    if name in ("total_size_bytes", "chunk_size_bytes"):
        return size
    if name == "content_type":
        return "application/" + "x" * (size - len("application/"))
    return "x" * size


def stated_limits() -> list[tuple[str, str, int]]:
    schema = openapi_document()["components"]["schemas"]["SessionRequest"]
    limits = []
    for name, prop in schema["properties"].items():
        for branch in prop.get("anyOf", [prop]):
            limits += [(name, key, branch[key]) for key in KEYWORDS if key in branch]
    return limits


def test_the_document_states_a_limit_for_every_bounded_field(fs_storage):
    assert {(name, key) for name, key, _ in stated_limits()} == {
        ("original_filename", "minLength"),
        ("original_filename", "maxLength"),
        ("content_type", "maxLength"),
        ("total_size_bytes", "minimum"),
        ("total_size_bytes", "maximum"),
        ("chunk_size_bytes", "minimum"),
        ("chunk_size_bytes", "maximum"),
        ("idempotency_key", "maxLength"),
    }


def test_every_session_limit_is_enforced_exactly_at_its_stated_value(uploader, fs_storage):
    for name, key, limit in stated_limits():
        at_limit = uploader.create(**{**BASE, name: sample(name, limit)})
        assert at_limit.status_code == 201, (name, key, limit, at_limit.content)

        beyond = uploader.create(**{**BASE, name: sample(name, limit + KEYWORDS[key])})
        assert beyond.status_code in (400, 413), (name, key, limit, beyond.content)


def test_limits_follow_the_settings_they_come_from(uploader, fs_storage):
    with override_settings(PORTAL_MAX_FILE_SIZE=2048, PORTAL_CHUNK_SIZE_MAX=32):
        stated = {(name, key): value for name, key, value in stated_limits()}
        assert stated[("total_size_bytes", "maximum")] == 2048
        assert stated[("chunk_size_bytes", "maximum")] == 32
        assert uploader.create(**{**BASE, "total_size_bytes": 2048}).status_code == 201
        assert uploader.create(**{**BASE, "total_size_bytes": 2049}).status_code == 413


def test_part_number_limits_are_the_enforced_ones(uploader, fs_storage):
    parameters = openapi_document()["paths"]["/uploads/sessions/{session_id}/parts/{part_number}"][
        "put"
    ]["parameters"]
    schema = next(p["schema"] for p in parameters if p["name"] == "part_number")
    low, high = schema["minimum"], schema["maximum"]
    with override_settings(PORTAL_MAX_FILE_SIZE=4 * high):
        session_id = uploader.create(
            original_filename="many.bin", total_size_bytes=4 * high, chunk_size_bytes=4
        ).json()["session_id"]

    assert uploader.put_part(session_id, low, b"a" * 4).status_code == 201
    assert uploader.put_part(session_id, high, b"z" * 4).status_code == 201
    for number in (low - 1, high + 1):
        response = uploader.put_part(session_id, number, b"x" * 4)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_part_number"
    assert UploadSession.objects.get().completed_parts == 2
