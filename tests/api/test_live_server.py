"""End to end over real HTTP on 127.0.0.1: out of order, interrupted, resumed, finalized."""

import hashlib
import os
import socket
from urllib.parse import urlsplit

import pytest
import requests

from portal.models import UploadPart
from portal.services.tokens import create_api_token
from tests.api.conftest import chunks_of, temp_objects
from tests.factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)


def parse_ranges(ranges: str) -> set[int]:
    """The client's side of ``received_parts``: ``"1-3,5"`` → ``{1, 2, 3, 5}``."""
    numbers = set()
    for span in filter(None, ranges.split(",")):
        first, _, last = span.partition("-")
        numbers.update(range(int(first), int(last or first) + 1))
    return numbers


def send_half_and_hang_up(url: str, token: str, body: bytes) -> None:
    """A PUT whose connection drops halfway through the body, as in a crashed client."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port)) as conn:
        conn.sendall(
            f"PUT {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body[: len(body) // 2]
        )
        conn.shutdown(socket.SHUT_WR)
        conn.recv(65536)  # the server answers once it sees the body end early


def test_interrupted_upload_resumes_from_received_parts(live_server, storage, chunk_size):
    token = create_api_token(user=make_user("e2e")).plaintext
    data = os.urandom(2 * chunk_size + chunk_size // 2)
    parts = chunks_of(data, chunk_size)
    api = f"{live_server.url}/uploads/sessions"

    with requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {token}"
        created = http.post(
            api,
            json={
                "original_filename": "dataset.bin",
                "content_type": "application/octet-stream",
                "total_size_bytes": len(data),
                "chunk_size_bytes": chunk_size,
                "idempotency_key": "e2e-1",
            },
            timeout=30,
        )
        assert created.status_code == 201, created.text
        session = created.json()
        assert session["total_parts"] == 3
        session_url = f"{api}/{session['session_id']}"
        for number in (3, 1):
            assert http.put(f"{session_url}/parts/{number}", data=parts[number], timeout=30).ok
    send_half_and_hang_up(f"{session_url}/parts/2", token, parts[2])

    # A new process: it knows only the idempotency key and the file.
    with requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {token}"
        again = http.post(
            api,
            json={
                "original_filename": "dataset.bin",
                "total_size_bytes": len(data),
                "chunk_size_bytes": chunk_size,
                "idempotency_key": "e2e-1",
            },
            timeout=30,
        )
        assert again.status_code == 200
        status = http.get(session_url, timeout=30).json()
        assert status["received_parts"] == "1,3"
        missing = set(range(1, status["total_parts"] + 1)) - parse_ranges(status["received_parts"])
        assert missing == {2}
        for number in sorted(missing):
            put = http.put(
                f"{session_url}/parts/{number}",
                data=parts[number],
                headers={"X-Part-SHA256": hashlib.sha256(parts[number]).hexdigest()},
                timeout=30,
            )
            assert put.status_code == 201, put.text
        done = http.post(
            f"{session_url}/finalize", json={"sha256": hashlib.sha256(data).hexdigest()}, timeout=60
        )

    assert done.status_code == 200, done.text
    stored = done.json()["file"]
    assert stored["sha256"] == hashlib.sha256(data).hexdigest()
    with storage.open(stored["storage"]["key"]) as final:
        assert final.read() == data
    # The dropped body left no object behind: only the three counted parts remain.
    assert sorted(temp_objects(storage)) == sorted(
        UploadPart.objects.values_list("temp_storage_key", flat=True)
    )
