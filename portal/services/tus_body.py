"""Reading a tus PATCH body (``portal.services.tus``): bounded, hashed, cut into pieces."""

import hashlib
from typing import BinaryIO

from portal.services.hashing import BackgroundDigest


class PatchBody:
    """The PATCH body, read at most ``length`` bytes, hashed when a checksum is sent and,
    when it is the ``whole`` upload, with SHA-256 for finalize."""

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
    """Reads an old tail object, then at most ``limit`` bytes of the body."""

    def __init__(self, head: BinaryIO | None, body: PatchBody, limit: int):
        self.head, self.body, self.limit = head, body, limit

    def read(self, size: int = -1) -> bytes:
        if self.head is not None:
            data = self.head.read(size)
            if data:
                return data
            self.head.close()
            self.head = None
        if self.limit <= 0:
            return b""
        data = self.body.read(min(size, self.limit) if size > 0 else self.limit)
        self.limit -= len(data)
        return data
