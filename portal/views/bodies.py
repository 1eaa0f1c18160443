"""Reading request bodies with an idle timeout: the one place every upload path reads from.

A client that stops sending (a stalled phone, an attacker holding sockets open)
would otherwise hold a server thread for ever. ``idle_timeout_body`` bounds each
wait for bytes, not the whole body: an honest slow upload that keeps sending goes
on for as long as it needs. When the wait runs out the read raises
``BodyAbandoned`` (HTTP 408), which the storage adapters treat like any other
failed stream: the temp object is discarded and nothing is counted.

The bound is a timeout on the client socket, which gunicorn hands to the app as
``environ["gunicorn.socket"]``. Under a server that exposes no socket (the test
client, ``runserver``) bodies are read without the bound.
"""

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import structlog

from portal import conf
from portal.exceptions import BodyAbandoned, TooLarge, UploadRejected

log = structlog.get_logger(__name__)

# A session or finalize body is a few hundred bytes; 64 KiB leaves room for any
# legal one (255 four-byte characters escaped as \uXXXX pairs are 3 KiB).
MAX_JSON_BODY_BYTES = 64 * 1024


class IdleTimeoutBody:
    """A file-like view of a request body whose reads raise ``BodyAbandoned`` on a stall."""

    def __init__(self, stream, *, idle_timeout: float):
        self._stream = stream
        self._idle_timeout = idle_timeout

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._stream.read(size)
        except OSError as exc:
            # Django re-raises the socket's TimeoutError as UnreadablePostError.
            if not isinstance(exc, TimeoutError) and not isinstance(exc.__cause__, TimeoutError):
                raise
            log.warning("part.abandoned", idle_timeout_seconds=self._idle_timeout)
            raise BodyAbandoned(
                f"The body sent nothing for {self._idle_timeout:g} seconds; send it again.",
            ) from None
        # A fast client's bytes are always ready, so reading them never waits: give the
        # other requests of this worker a turn after each piece (under gevent this is
        # a switch to the event loop; with threads, a moment off the GIL).
        time.sleep(0)
        return data


@contextmanager
def idle_timeout_body(request, *, idle_timeout: float | None = None) -> Iterator[IdleTimeoutBody]:
    """The body of ``request`` as a stream whose every wait for bytes is bounded.

    ``idle_timeout`` defaults to ``PORTAL_PART_IDLE_TIMEOUT_SECONDS``. The socket's
    previous timeout is restored afterwards, so the server's keep-alive handling
    is unchanged.
    """
    idle_timeout = conf.part_idle_timeout() if idle_timeout is None else idle_timeout
    sock = request.META.get("gunicorn.socket")
    if sock is None:
        yield IdleTimeoutBody(request, idle_timeout=idle_timeout)
        return
    previous = sock.gettimeout()
    sock.settimeout(idle_timeout)
    try:
        yield IdleTimeoutBody(request, idle_timeout=idle_timeout)
    finally:
        with suppress(OSError):  # the client already went away
            sock.settimeout(previous)


def json_object(request) -> dict:
    """The body as a JSON object; an empty body is ``{}``.

    Read with the idle timeout and at most ``MAX_JSON_BODY_BYTES``; any body that is
    not a JSON object (bad UTF-8, bad syntax, nested too deep to parse) is a 400.
    """
    length = request.META.get("CONTENT_LENGTH") or ""
    if length.isascii() and length.isdigit() and int(length) > MAX_JSON_BODY_BYTES:
        raise TooLarge(
            f"The JSON body is larger than {MAX_JSON_BODY_BYTES} bytes.", code="body_too_large"
        )
    with idle_timeout_body(request) as body:
        raw = body.read(MAX_JSON_BODY_BYTES + 1)
    if len(raw) > MAX_JSON_BODY_BYTES:
        raise TooLarge(
            f"The JSON body is larger than {MAX_JSON_BODY_BYTES} bytes.", code="body_too_large"
        )
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError):  # JSONDecodeError is a ValueError
        raise UploadRejected("The body is not valid JSON.", code="invalid_json") from None
    except RecursionError:
        raise UploadRejected("The JSON body is nested too deeply.", code="invalid_json") from None
    if not isinstance(data, dict):
        raise UploadRejected("The body must be a JSON object.", code="invalid_json")
    return data
