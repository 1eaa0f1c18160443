"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

A delivery is signed over ``"{webhook-id}.{webhook-timestamp}.{body}"`` with
HMAC-SHA256 and sent as ``webhook-signature: v1,<base64 digest>``.

The key: a secret written the Standard Webhooks way, ``whsec_<base64>``, signs with
the base64-decoded bytes after the prefix; any other secret signs with its raw UTF-8
bytes. (Verifiers built on the ``standardwebhooks`` package must then pass those bytes,
``Webhook(secret.encode())``, because the package base64-decodes every string secret.)
"""

import base64
import hashlib
import hmac

SECRET_PREFIX = "whsec_"


def signing_key(secret: str) -> bytes:
    if secret.startswith(SECRET_PREFIX):
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    return secret.encode()


def sign(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value of one delivery attempt."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return f"v1,{base64.b64encode(digest).decode()}"


def webhook_headers(
    *, secret: str, msg_id: str, event_type: str, timestamp: int, body: bytes
) -> dict:
    """Every header of one delivery: Standard Webhooks' three plus the portal's two."""
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret=secret, msg_id=msg_id, timestamp=timestamp, body=body),
        "X-Webhook-Delivery": msg_id,
        "X-Webhook-Event": event_type,
    }
