"""Deletion against an S3 endpoint that fails on the wire: the file stays stored, then goes."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import override_settings

from portal.models import FileDeletion, UploadFile
from portal.services.retention import delete_expired_files, notify_expiring_files
from portal.storage import build_storage
from tests.retention.helpers import DAY, NOTICE, NOW, exists, stored_file

pytestmark = pytest.mark.django_db

INTERNAL_ERROR = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"
)


class FailingS3(BaseHTTPRequestHandler):
    """Answers every request with S3's 500 InternalError."""

    def _fail(self):
        self.send_response(500)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(INTERNAL_ERROR)))
        self.end_headers()
        self.wfile.write(INTERNAL_ERROR)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _fail

    def log_message(self, *args):
        pass


@pytest.fixture
def failing_endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FailingS3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_s3_outage_keeps_files_stored_and_the_next_run_deletes_them(
    s3_storage, s3_settings, failing_endpoint
):
    uploads = [stored_file(s3_storage, stored_at=NOW - 40 * DAY) for _ in range(3)]
    notify_expiring_files(now=NOW)
    with override_settings(**{**s3_settings, "AWS_S3_ENDPOINT_URL": failing_endpoint}):
        broken = build_storage("s3")

    failed = delete_expired_files(now=NOW + NOTICE, storage=broken)

    assert (failed.deleted, failed.failed, len(failed.errors)) == (0, 3, 3)
    assert UploadFile.objects.filter(status="stored", retention_claimed_until=None).count() == 3
    assert all(exists(s3_storage, u.storage_key) for u in uploads)
    assert not FileDeletion.objects.exists()

    healed = delete_expired_files(now=NOW + NOTICE + DAY, storage=s3_storage)

    assert (healed.deleted, healed.failed) == (3, 0)
    assert not any(exists(s3_storage, u.storage_key) for u in uploads)
    assert FileDeletion.objects.count() == 3
