#!/usr/bin/env python
"""A minimal webhook receiver that verifies the portal's signed deliveries.

Standard library only, so it can be copied into any service:

    WEBHOOK_SECRET=whsec_... python examples/webhook_receiver.py --port 8001

Point the portal at it with ``PORTAL_RUNNER_ENDPOINT=http://127.0.0.1:8001/`` and
``PORTAL_RUNNER_AUTH_SECRET`` set to the same secret (or add a ``WebhookEndpoint``).

Verification (Standard Webhooks): HMAC-SHA256 over ``"{webhook-id}.{webhook-timestamp}.{body}"``
with the key (``whsec_<base64>``: the decoded bytes; any other secret: its UTF-8 bytes),
compared in constant time with each ``v1,<base64>`` entry of ``webhook-signature``;
timestamps more than five minutes away from now are refused (replays). Answers 204
for a valid delivery (a repeated ``webhook-id`` is acknowledged but not processed
twice: delivery is at least once) and 401 otherwise. It prints one line per request.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_SECONDS = 5 * 60


def signing_key(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        return base64.b64decode(secret.removeprefix("whsec_"))
    return secret.encode()


def verify(secret: str, headers, body: bytes, *, now: float) -> bool:
    msg_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not (msg_id and timestamp.isdigit() and signatures):
        return False
    if abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        return False
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    for entry in signatures.split():
        version, _, signature = entry.partition(",")
        if version == "v1" and hmac.compare_digest(base64.b64decode(signature), expected):
            return True
    return False


def make_handler(secret: str, out):
    seen = set()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            msg_id = self.headers.get("webhook-id")
            if not verify(secret, self.headers, body, now=time.time()):
                out.write(f"rejected {msg_id}\n")
                self.answer(401)
            elif msg_id in seen:
                out.write(f"duplicate {msg_id}\n")
                self.answer(204)
            else:
                seen.add(msg_id)
                event = json.loads(body)
                out.write(f"verified {msg_id} {event['event_type']}\n")
                self.answer(204)
            out.flush()

        def answer(self, status):
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format, *args):
            pass

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001, help="0 picks a free port")
    args = parser.parse_args()
    secret = os.environ.get("WEBHOOK_SECRET")
    if not secret:
        sys.exit("Set WEBHOOK_SECRET to the secret the portal signs with.")
    server = ThreadingHTTPServer((args.host, args.port), make_handler(secret, sys.stdout))
    sys.stdout.write(f"listening on http://{args.host}:{server.server_address[1]}/\n")
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
