import hashlib
import json
import re
from datetime import UTC, datetime

import pytest
from django.test import Client, override_settings
from django.urls import resolve
from jsonschema import Draft202012Validator

from portal.services.tokens import create_api_token
from portal.views.uploads import api
from tests.factories import make_user

# Small limits so tests send bytes, not megabytes; S3 tests use 5 MiB chunks instead.
SMALL_LIMITS = {
    "PORTAL_CHUNK_SIZE": 8,
    "PORTAL_CHUNK_SIZE_MIN": 4,
    "PORTAL_CHUNK_SIZE_MAX": 64,
    "PORTAL_MAX_FILE_SIZE": 1024,
}


def openapi_document() -> dict:
    """The generated document as clients receive it (JSON: status keys are strings)."""
    return json.loads(json.dumps(api.get_openapi_schema(), default=str))


def path_template(path: str) -> str:
    """``/uploads/sessions/<uuid>/parts/3`` → ``/uploads/sessions/{session_id}/parts/{part_number}``."""
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", resolve(path).route)


def assert_documented(method: str, path: str, response) -> None:
    """The answer's status is listed for its operation, its JSON body fits the schema and
    its error code is one of the codes the document lists for that status."""
    document = openapi_document()
    operation = document["paths"][path_template(path)][method.lower()]
    documented = operation["responses"].get(str(response.status_code))
    assert documented, (
        f"{method} {path_template(path)} answered {response.status_code}, "
        "which the OpenAPI document omits"
    )
    schema = documented.get("content", {}).get("application/json", {}).get("schema")
    if schema:
        # OpenAPI 3.1 schemas are JSON Schema 2020-12; refs resolve against the document.
        Draft202012Validator({**schema, "components": document["components"]}).validate(
            response.json()
        )
    if "x-error-codes" in documented:
        assert response.json()["error"]["code"] in documented["x-error-codes"], (
            f"{method} {path_template(path)} answered {response.status_code} "
            f"{response.json()['error']['code']}, which the OpenAPI document omits"
        )


class UploadClient:
    """The upload API over Django's test client, as one user with one bearer token.

    Every answer is checked against the OpenAPI document and recorded.
    """

    def __init__(self, token: str | None, user=None):
        self.client = Client()
        self.token = token
        self.user = user

    def request(
        self, method: str, path: str, *, body=b"", content_type="application/json", **headers
    ):
        if self.token is not None:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        response = self.client.generic(
            method, path, body, content_type=content_type, headers=headers
        )
        assert_documented(method, path, response)
        return response

    def create(self, raw_body=None, **fields):
        body = raw_body if raw_body is not None else json.dumps(fields)
        return self.request("POST", "/uploads/sessions", body=body)

    def put_part(self, session_id, number, data: bytes, **headers):
        return self.request(
            "PUT",
            f"/uploads/sessions/{session_id}/parts/{number}",
            body=data,
            content_type="application/octet-stream",
            **headers,
        )

    def status(self, session_id):
        return self.request("GET", f"/uploads/sessions/{session_id}")

    def finalize(self, session_id, raw_body=None, **fields):
        body = raw_body if raw_body is not None else (json.dumps(fields) if fields else b"")
        return self.request("POST", f"/uploads/sessions/{session_id}/finalize", body=body)

    def abort(self, session_id):
        return self.request("DELETE", f"/uploads/sessions/{session_id}")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def chunks_of(data: bytes, size: int) -> dict[int, bytes]:
    return {n + 1: data[i : i + size] for n, i in enumerate(range(0, len(data), size))}


@pytest.fixture
def small_limits():
    with override_settings(**SMALL_LIMITS):
        yield


@pytest.fixture
def chunk_size(storage):
    """The chunk size the test uploads with on ``storage``: tiny, or S3's 5 MiB minimum."""
    if storage.backend == "s3":
        size = 5 * 1024 * 1024
        limits = {"PORTAL_CHUNK_SIZE_MIN": size, "PORTAL_CHUNK_SIZE": size}
    else:
        size = SMALL_LIMITS["PORTAL_CHUNK_SIZE"]
        limits = SMALL_LIMITS
    with override_settings(**limits):
        yield size


@pytest.fixture
def uploader(db):
    user = make_user("uploader")
    return UploadClient(create_api_token(user=user).plaintext, user=user)


@pytest.fixture
def other_uploader(db):
    user = make_user("someone-else")
    return UploadClient(create_api_token(user=user).plaintext, user=user)


def temp_objects(storage) -> list[str]:
    return [
        obj.key for obj in storage.iter_temp_objects(older_than=datetime(9999, 1, 1, tzinfo=UTC))
    ]
