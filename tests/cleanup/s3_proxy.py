"""A small HTTP proxy in front of moto's S3 server that breaks DeleteObjects on demand.

Every request is forwarded unchanged except DeleteObjects (``POST /bucket?delete``):

- ``fail_every=N``: of every N distinct DeleteObjects calls, one answers 500
  without reaching S3 and another reaches S3 but reports its first key as failed.
  A retried call (same body) gets the same answer, as a broken disk or a key
  S3 keeps refusing would give, so boto3's own retries do not hide the fault.
- ``hang_after=N``: the first N calls go through, the next one blocks (setting
  ``hung``) until ``release`` is set, then fails with 500.
"""

import hashlib
import http.client
import threading
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length"}
ET.register_namespace("", S3_NS[1:-1])
INTERNAL_ERROR = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"
)


class FaultyS3Proxy:
    def __init__(self, upstream: str, *, fail_every: int = 0, hang_after: int | None = None):
        self.upstream = urlsplit(upstream)
        self.fail_every = fail_every
        self.hang_after = hang_after
        self.hung = threading.Event()
        self.release = threading.Event()
        self.failed_calls = 0
        self.failed_keys = 0
        self._decisions: dict[str, str] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    def heal(self):
        with self._lock:
            self.fail_every, self.hang_after = 0, None
            self._decisions.clear()

    def _decide(self, body: bytes) -> str:
        """ "ok", "500", "key-error" or "hang" for this DeleteObjects body; stable on retry."""
        digest = hashlib.sha256(body).hexdigest()
        with self._lock:
            if digest not in self._decisions:
                calls = len(self._decisions)
                decision = "ok"
                if self.hang_after is not None and calls >= self.hang_after:
                    decision = "hang"
                elif self.fail_every and calls % self.fail_every == 0:
                    decision = "500" if calls // self.fail_every % 2 == 0 else "key-error"
                self._decisions[digest] = decision
            return self._decisions[digest]

    def _forward(self, method, path, headers, body):
        connection = http.client.HTTPConnection(
            self.upstream.hostname, self.upstream.port, timeout=60
        )
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                decision = "ok"
                if self.command == "POST" and "delete" in urlsplit(self.path).query:
                    decision = proxy._decide(body or b"")
                if decision == "hang":
                    proxy.hung.set()
                    proxy.release.wait(timeout=120)
                    decision = "500"
                if decision == "500":
                    with proxy._lock:
                        proxy.failed_calls += 1
                    return self._reply(500, [("Content-Type", "application/xml")], INTERNAL_ERROR)
                status, response_headers, payload = proxy._forward(
                    self.command, self.path, headers, body
                )
                if decision == "key-error":
                    payload = proxy._fail_first_key(body, payload)
                self._reply(status, response_headers, payload)

            def _reply(self, status, headers, payload):
                self.send_response(status)
                for name, value in headers:
                    # A HEAD answer keeps the object's length and has no body.
                    keep = self.command == "HEAD" and name.lower() == "content-length"
                    if keep or name.lower() not in HOP_HEADERS:
                        self.send_header(name, value)
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _serve

        return Handler

    def _fail_first_key(self, request_body: bytes, payload: bytes) -> bytes:
        """Report the call's first key as failed: the object may be gone, S3 said no."""
        first_key = ET.fromstring(request_body).find(f"{S3_NS}Object/{S3_NS}Key")
        if first_key is None:
            first_key = ET.fromstring(request_body).find("Object/Key")
        result = ET.fromstring(payload)
        namespace = S3_NS if result.tag.startswith(S3_NS) else ""
        error = ET.SubElement(result, f"{namespace}Error")
        ET.SubElement(error, f"{namespace}Key").text = first_key.text
        ET.SubElement(error, f"{namespace}Code").text = "InternalError"
        ET.SubElement(error, f"{namespace}Message").text = "injected"
        with self._lock:
            self.failed_keys += 1
        return ET.tostring(result, xml_declaration=True, encoding="UTF-8")
