"""Real tus clients against the portal as a real server process: interrupted, resumed, stored.

Each client uploads a file, is killed mid-upload, the server is killed and restarted,
and the client (a new process, knowing only its URL store) resumes. The stored bytes
and SHA-256 equal the source and exactly one ``file.stored`` event is written.
"""

import functools
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

from portal.models import UploadFile, UploadSession
from portal.services.tokens import create_api_token
from tests.environment import require
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


def settled_bytes(partials, *, timeout: float = 10.0) -> int:
    """What the uploads hold once the server has stored what arrived: each body sent in
    one PATCH is one part (PEP 0024), kept as a tail a moment after the client dies."""
    deadline = time.monotonic() + timeout
    held = previous = -1
    while time.monotonic() < deadline:
        held = sum(s.bytes_received + s.tus.tail_size for s in partials.select_related("tus"))
        if held > 0 and held == previous:
            break
        previous = held
        time.sleep(0.2)
    return held


def node_harness() -> Path:
    installed = (JS_DIR / "node_modules" / "tus-js-client").exists()
    require(installed and shutil.which("node") is not None, f"needs node and 'npm ci' in {JS_DIR}")
    return JS_DIR


def test_tus_js_client_parallel_uploads_are_killed_resumed_and_concatenated(
    tmp_path, storage_root, portal_server
):
    token = create_api_token(user=make_user("tus-js")).plaintext
    # Large enough that what the kernel buffers when the client dies is not the rest of
    # every body: on loopback a killed client's buffered bytes still arrive.
    source = source_file(tmp_path, 48 * 1024 * 1024 + 4321)
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
        [*command, "--kill-at", str(source.stat().st_size // 8)],
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
    held = settled_bytes(partials)
    assert 0 < held < source.stat().st_size
    portal_server.restart()
    resumed = subprocess.run(
        command, cwd=node_harness(), capture_output=True, text=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert lines(resumed.stdout)[0] == {"resumed": 1}
    assert_stored_once(storage_root, source)
    assert UploadSession.objects.count() == 1  # the partials became the final upload


class PageServer:
    """The test's page (Uppy bundled from node_modules) on its own origin."""

    def __init__(self, directory: Path):
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=directory)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def uppy_page(tmp_path):
    js = node_harness()
    page = tmp_path / "page"
    page.mkdir()
    shutil.copy(js / "uppy" / "index.html", page / "index.html")
    subprocess.run(
        [
            str(js / "node_modules" / ".bin" / "esbuild"),
            str(js / "uppy" / "entry.js"),
            "--bundle",
            "--format=iife",
            f"--outfile={page / 'bundle.js'}",
            "--log-level=warning",
        ],
        cwd=js,
        check=True,
        timeout=120,
    )
    server = PageServer(page)
    yield server
    server.close()


@pytest.fixture
def cors_portal_server(tmp_path, storage_root, uppy_page):
    """The portal allowing the page's origin, which differs from its own (a real CORS case)."""
    from tests.tus.server import PortalServer

    server = PortalServer(
        storage_root,
        chunk_size=64 * 1024,
        log_path=tmp_path / "server.log",
        CORS_ALLOWED_ORIGINS=uppy_page.origin,
    )
    server.start()
    yield server
    server.kill()


def test_uppy_dashboard_in_chromium_is_killed_server_restarts_and_upload_resumes(
    tmp_path, storage_root, uppy_page, cors_portal_server
):
    require(Path(os.environ.get("CHROMIUM", "/usr/bin/chromium")).exists(), "needs chromium")
    token = create_api_token(user=make_user("uppy")).plaintext
    source = source_file(tmp_path, 4 * 1024 * 1024 + 777)
    query = urlencode({"endpoint": f"{cors_portal_server.url}/uploads/tus/", "token": token})
    command = [
        "node",
        "uppy.mjs",
        f"{uppy_page.origin}/index.html?{query}",
        str(source),
        str(tmp_path / "profile"),
    ]
    killed = subprocess.run(
        [*command, "--kill-at", str(source.stat().st_size // 3)],
        cwd=node_harness(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert killed.returncode == 137, killed.stdout + killed.stderr
    assert stored_events() == []
    [session] = UploadSession.objects.select_related("tus")
    interrupted_at = session.bytes_received + session.tus.tail_size
    assert 0 < interrupted_at < source.stat().st_size
    cors_portal_server.restart()
    resumed = subprocess.run(
        command, cwd=node_harness(), capture_output=True, text=True, timeout=180
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    # The same session finished: Uppy resumed it rather than starting over.
    assert UploadSession.objects.get().pk == session.pk
    progress = [line["progress"] for line in lines(resumed.stdout) if "progress" in line]
    assert min(progress) >= interrupted_at  # no byte before the durable offset again
    assert_stored_once(storage_root, source)
