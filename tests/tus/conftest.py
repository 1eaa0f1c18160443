import base64
import hashlib

import pytest
from django.test import Client, override_settings

from portal.models import OutboxEvent, UploadFile
from portal.services.tokens import create_api_token
from tests.factories import make_user

# Parts of 8 bytes: a PATCH of a few bytes already spans parts and leaves a tail.
SMALL_LIMITS = {
    "PORTAL_CHUNK_SIZE": 8,
    "PORTAL_CHUNK_SIZE_MIN": 4,
    "PORTAL_CHUNK_SIZE_MAX": 64,
    "PORTAL_MAX_FILE_SIZE": 1024,
}
TUS = {"Tus-Resumable": "1.0.0"}


def metadata(**pairs) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())


def checksum(algorithm: str, data: bytes) -> str:
    return f"{algorithm} {base64.b64encode(hashlib.new(algorithm, data).digest()).decode()}"


def stored_bytes(storage, session_id) -> bytes:
    """The stored file of the upload ``session_id``, read through ``storage``."""
    upload_file = UploadFile.objects.get(session__pk=session_id)
    with storage.open(upload_file.storage_key) as f:
        return f.read()


def stored_events() -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(event_type="file.stored"))


class TusClient:
    """tus requests over Django's test client, as one user with one bearer token."""

    def __init__(self, token: str | None):
        self.client = Client()
        self.token = token

    def request(self, method, path, body=b"", content_type=None, **headers):
        headers = {**TUS, **headers}
        if self.token is not None:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        kwargs = {"content_type": content_type} if content_type else {}
        return self.client.generic(method, path, body, headers=headers, **kwargs)

    def create(self, length: int | None, *, body: bytes | None = None, **headers):
        if length is not None:
            headers["Upload-Length"] = str(length)
        headers.setdefault("Upload-Metadata", metadata(filename="data.bin", filetype="text/plain"))
        if body is None:
            return self.request("POST", "/uploads/tus/", **headers)
        return self.request(
            "POST", "/uploads/tus/", body, "application/offset+octet-stream", **headers
        )

    def patch(self, url: str, offset: int, data: bytes, **headers):
        return self.request(
            "PATCH",
            url,
            data,
            "application/offset+octet-stream",
            **{"Upload-Offset": str(offset)},
            **headers,
        )

    def head(self, url: str):
        return self.request("HEAD", url)

    def delete(self, url: str):
        return self.request("DELETE", url)


def path_of(response) -> str:
    return "/" + response["Location"].split("/", 3)[3]


@pytest.fixture
def small_limits():
    with override_settings(**SMALL_LIMITS):
        yield


@pytest.fixture
def tus_user(db):
    return make_user("tus-uploader")


@pytest.fixture
def tus(tus_user):
    return TusClient(create_api_token(user=tus_user).plaintext)


@pytest.fixture
def portal_server(tmp_path, storage_root):
    """A gunicorn process of the portal sharing the test database and storage root."""
    from tests.tus.server import PortalServer

    server = PortalServer(
        storage_root,
        chunk_size=64 * 1024,
        log_path=tmp_path / "server.log",
        CORS_ALLOWED_ORIGINS="http://127.0.0.1",
    )
    server.start()
    yield server
    server.kill()
