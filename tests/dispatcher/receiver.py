"""A real webhook receiver on 127.0.0.1 whose answer depends on the request path.

``/ok`` 200, ``/error`` 500, ``/throttle?after=<Retry-After>`` 429, ``/unavailable?after=``
503, ``/gone`` 410, ``/redirect`` 302, ``/hang`` answers only once released (or after
30 s), ``/drop`` closes the connection without answering. Every request is recorded
before it is answered.
"""

import socket
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class ReceivedRequest:
    path: str
    headers: dict
    body: bytes


class WebhookReceiver:
    def __init__(self):
        self.requests: list[ReceivedRequest] = []
        self.webhook_ids = Counter()
        self.lock = threading.Lock()
        self.arrived = threading.Event()  # set when any request arrives
        self.release = threading.Event()  # lets /hang answer
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler_class())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def record(self, request: ReceivedRequest):
        with self.lock:
            self.requests.append(request)
            self.webhook_ids[request.headers.get("webhook-id")] += 1
        self.arrived.set()

    def handler_class(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like a real receiver

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                url = urlsplit(self.path)
                receiver.record(
                    ReceivedRequest(url.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                after = parse_qs(url.query).get("after", [None])[0]
                match url.path:
                    case "/ok":
                        self.answer(200)
                    case "/error":
                        self.answer(500)
                    case "/throttle":
                        self.answer(429, {"Retry-After": after} if after else {})
                    case "/unavailable":
                        self.answer(503, {"Retry-After": after} if after else {})
                    case "/gone":
                        self.answer(410)
                    case "/redirect":
                        self.answer(302, {"Location": f"{receiver.url}/ok"})
                    case "/hang":
                        receiver.release.wait(30)
                        self.answer(200)
                    case "/drop":
                        self.connection.shutdown(socket.SHUT_RDWR)
                        self.close_connection = True
                    case _:
                        self.answer(404)

            def answer(self, status, headers=None):
                try:
                    self.send_response(status)
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    self.close_connection = True  # the client gave up (timeout, killed)

            def log_message(self, format, *args):
                pass

        return Handler
