"""The server killed in the middle of a PATCH that carries a whole upload, then restarted.

A real gunicorn process of the portal (production config), a client on a raw socket
that sends the upload in one body, as tus-js-client does by default, and tuspy to
resume. The part being written was recorded as the tail every
``PORTAL_CHUNK_SIZE_MAX`` bytes (PEP 0024), so the crash loses at most that much.
"""

import http.client
import threading
import time
from urllib.parse import urlsplit

import pytest
import requests
from tusclient import client as tus_client

from portal.models import TusUpload
from portal.services.tokens import create_api_token
from tests.factories import make_user
from tests.tus.conftest import stored_events
from tests.tus.test_clients import assert_stored_once, source_file

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.slow]

MiB = 1024 * 1024
SIZE = 8 * MiB + 5


@pytest.fixture
def crashing_server(tmp_path, storage_root):
    from tests.tus.server import PortalServer

    server = PortalServer(
        storage_root,
        chunk_size=MiB,
        log_path=tmp_path / "server.log",
        PORTAL_CHUNK_SIZE_MAX=str(2 * MiB),
    )
    server.start()
    yield server
    server.kill()


def send_until_held(url: str, token: str, data: bytes, sent: int, hold: threading.Event) -> None:
    """PATCH the whole upload at offset 0; after ``sent`` bytes, wait for ``hold``."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    connection.putrequest("PATCH", parts.path)
    for name, value in {
        "Tus-Resumable": "1.0.0",
        "Authorization": f"Bearer {token}",
        "Upload-Offset": "0",
        "Content-Type": "application/offset+octet-stream",
        "Content-Length": str(len(data)),
    }.items():
        connection.putheader(name, value)
    connection.endheaders()
    try:
        for start in range(0, sent, 64 * 1024):
            connection.send(data[start : min(sent, start + 64 * 1024)])
        hold.wait(60)
    except OSError:  # the server died under us
        pass
    finally:
        connection.close()


def recorded_tail(*, at_least: int, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tail = TusUpload.objects.values_list("tail_size", flat=True).first() or 0
        if tail >= at_least:
            return tail
        time.sleep(0.05)
    raise AssertionError(f"no tail of {at_least} bytes was recorded")


def test_a_server_killed_mid_patch_keeps_the_recorded_bytes_and_tuspy_resumes(
    tmp_path, storage_root, crashing_server
):
    token = create_api_token(user=make_user("whole-body")).plaintext
    source = source_file(tmp_path, SIZE)
    data = source.read_bytes()
    created = requests.post(
        f"{crashing_server.url}/uploads/tus/",
        headers={
            "Tus-Resumable": "1.0.0",
            "Authorization": f"Bearer {token}",
            "Upload-Length": str(SIZE),
            "Upload-Metadata": "filename c291cmNlLmJpbg==",
        },
        timeout=30,
    )
    assert created.status_code == 201, created.text
    url = created.headers["Location"]
    hold = threading.Event()
    sender = threading.Thread(target=send_until_held, args=(url, token, data, 7 * MiB, hold))
    sender.start()
    try:
        recorded = recorded_tail(at_least=4 * MiB)
        crashing_server.kill()  # SIGKILL mid-body: no handler of the portal runs
    finally:
        hold.set()
        sender.join(60)
    assert stored_events() == []

    crashing_server.start()
    head = requests.head(
        url, headers={"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {token}"}
    )
    offset = int(head.headers["Upload-Offset"])
    # What the last checkpoint recorded (a later one may have landed before the kill).
    assert recorded <= offset < 7 * MiB
    uploader = tus_client.TusClient(
        f"{crashing_server.url}/uploads/tus/", headers={"Authorization": f"Bearer {token}"}
    ).uploader(file_path=str(source), url=url, chunk_size=SIZE)
    assert uploader.offset == offset
    uploader.upload()
    assert_stored_once(storage_root, source)
