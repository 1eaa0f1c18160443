"""Reading a tus PATCH body (``portal.services.tus``): bounded, hashed, cut into pieces."""

import hashlib
from typing import BinaryIO

from portal.services.hashing import BackgroundDigest


class PatchBody:
    """The PATCH body, read at most ``length`` bytes, hashed when a checksum is sent and,
    when ``whole`` (the whole upload, in several parts), with SHA-256 for finalize."""

    def __init__(self, stream: BinaryIO, length: int, checksum_hash, *, whole: bool):
        self.stream = stream
        self.left = length
        self.hash = checksum_hash  # a hashlib object for Upload-Checksum, or None
        # Hashed beside the part's own digest (``write_temp_part``), on another core.
        self.sha256 = BackgroundDigest(hashlib.sha256()) if whole else None
        self.keys: list[str] = []  # every object written from this body, in order
        self.ended = False  # the stream ran dry before ``length`` bytes

    def read(self, size: int) -> bytes:
        if self.left <= 0 or self.ended:
            return b""
        try:
            data = self.stream.read(min(size, self.left))
        except ConnectionError:  # the client went away: keep what arrived
            data = b""
        if not data:
            self.ended = True
        self.left -= len(data)
        for digest in (self.hash, self.sha256):
            if digest is not None:
                digest.update(data)
        return data


class Piece:
    """Reads the first ``head_size`` bytes of an old tail object, then at most ``limit``
    bytes of the body. (A tail recorded while it was written may hold more bytes than
    were recorded: those are not the upload's yet.)"""

    def __init__(self, head: BinaryIO | None, head_size: int, body: PatchBody, limit: int):
        self.head, self.head_left, self.body, self.limit = head, head_size, body, limit

    def read(self, size: int = -1) -> bytes:
        if self.head is not None:
            data = self.head.read(min(size, self.head_left) if size > 0 else self.head_left)
            self.head_left -= len(data)
            if data:
                return data
            self.head.close()
            self.head = None
        if self.limit <= 0:
            return b""
        data = self.body.read(min(size, self.limit) if size > 0 else self.limit)
        self.limit -= len(data)
        return data
