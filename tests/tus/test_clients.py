"""Real tus clients against the portal as a real server process: interrupted, resumed, stored.

Each client uploads a file, is killed mid-upload, the server is killed and restarted,
and the client (a new process, knowing only its URL store) resumes. The stored bytes
and SHA-256 equal the source and exactly one ``file.stored`` event is written.
"""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from portal.models import UploadFile, UploadSession
from portal.services.tokens import create_api_token
from tests.factories import make_user
from tests.tus.conftest import stored_events
from tests.tus.server import JS_DIR

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.slow]

CLIENTS = Path(__file__).resolve().parent / "clients"


def source_file(tmp_path, size: int) -> Path:
    path = tmp_path / "source.bin"
    path.write_bytes(os.urandom(size))
    return path


def assert_stored_once(storage_root: Path, source: Path) -> None:
    [event] = stored_events()
    upload_file = UploadFile.objects.get(pk=event.payload["file"]["id"])
    assert upload_file.status == "stored"
    stored = (storage_root / upload_file.storage_key).read_bytes()
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    assert hashlib.sha256(stored).hexdigest() == digest == upload_file.sha256
    assert stored == source.read_bytes()


def offsets(output: str) -> list[int]:
    return [json.loads(line)["offset"] for line in output.splitlines() if line.startswith("{")]


def test_tuspy_is_killed_server_restarts_and_upload_resumes(tmp_path, storage_root, portal_server):
    token = create_api_token(user=make_user("tuspy")).plaintext
    source = source_file(tmp_path, 1024 * 1024 + 12345)
    command = [
        sys.executable,
        str(CLIENTS / "tuspy_upload.py"),
        f"{portal_server.url}/uploads/tus/",
        token,
        str(source),
        str(tmp_path / "urls.json"),
        "100000",
    ]
    killed = subprocess.run([*command, "400000"], capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    assert 400000 <= offsets(killed.stdout)[-1] < source.stat().st_size
    assert stored_events() == []
    portal_server.restart()
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    # It resumed where the server's HEAD said the durable bytes end, not from zero.
    assert offsets(resumed.stdout)[0] == offsets(killed.stdout)[-1]
    assert offsets(resumed.stdout)[-1] == source.stat().st_size
    assert_stored_once(storage_root, source)


def lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def node_harness() -> Path:
    harness = JS_DIR / "node_modules" / "tus-js-client"
    if not harness.exists():
        pytest.fail(f"run 'npm ci' in {JS_DIR} (.ci/run does)", pytrace=False)
    return JS_DIR


def test_tus_js_client_parallel_uploads_are_killed_resumed_and_concatenated(
    tmp_path, storage_root, portal_server
):
    token = create_api_token(user=make_user("tus-js")).plaintext
    source = source_file(tmp_path, 6 * 1024 * 1024 + 4321)
    command = [
        "node",
        "upload.mjs",
        f"{portal_server.url}/uploads/tus/",
        token,
        str(source),
        str(tmp_path / "urls.json"),
        "--parallel",
        "4",
    ]
    killed = subprocess.run(
        [*command, "--kill-at", str(source.stat().st_size // 2)],
        cwd=node_harness(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stdout + killed.stderr
    assert stored_events() == []
    # Four partial uploads, each holding what arrived of its body before the kill.
    partials = UploadSession.objects.filter(tus__is_partial=True)
    assert partials.count() == 4
    held = sum(s.bytes_received + s.tus.tail_size for s in partials.select_related("tus"))
    assert 0 < held < source.stat().st_size
    portal_server.restart()
    resumed = subprocess.run(
        command, cwd=node_harness(), capture_output=True, text=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert lines(resumed.stdout)[0] == {"resumed": 1}
    assert_stored_once(storage_root, source)
    assert UploadSession.objects.count() == 1  # the partials became the final upload
