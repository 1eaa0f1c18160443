"""The streams the S3 adapter (``portal.storage.s3``) uploads from and assembles with:
a stream counted and hashed on the way, the buffers of a multipart upload, and temp
parts read one after another."""

import hashlib

from portal.exceptions import PartTooLarge

# S3 refuses multipart parts under 5 MiB (all but the last). Parts are uploaded from
# a buffer of this size, which is also the most a write holds in memory.
UPLOAD_BUFFER_SIZE = 5 * 1024**2
# The buffer fills in small reads, so it stays the only large allocation of a write.
FILL_READ_SIZE = 256 * 1024


class MeteredReader:
    """Pass a stream's bytes through, counting and hashing them.

    Never asks the stream for more than one byte past ``max_bytes``, and raises
    ``PartTooLarge`` as soon as that byte arrives.
    """

    def __init__(self, stream, *, max_bytes: int | None):
        self._stream = stream
        self._max_bytes = max_bytes
        self._digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int) -> bytes:
        if self._max_bytes is not None:
            size = min(size, self._max_bytes + 1 - self.size)
        chunk = self._stream.read(size)
        self.size += len(chunk)
        if self._max_bytes is not None and self.size > self._max_bytes:
            raise PartTooLarge(f"part is larger than {self._max_bytes} bytes")
        self._digest.update(chunk)
        return chunk

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


def fill(reader) -> bytearray:
    """Up to ``UPLOAD_BUFFER_SIZE`` bytes of ``reader``; shorter only at its end."""
    # Filled in place: growing a bytearray chunk by chunk would briefly hold two copies.
    buffer = bytearray(UPLOAD_BUFFER_SIZE)
    view = memoryview(buffer)
    filled = 0
    while filled < UPLOAD_BUFFER_SIZE:
        chunk = reader.read(min(FILL_READ_SIZE, UPLOAD_BUFFER_SIZE - filled))
        if not chunk:
            break
        view[filled : filled + len(chunk)] = chunk
        filled += len(chunk)
    view.release()
    del buffer[filled:]
    return buffer


class ChainedReader:
    """The temp parts read one after another, as one stream."""

    def __init__(self, storage, part_keys: list[str]):
        self._storage = storage
        self._pending = list(part_keys)
        self._current = None

    def read(self, size: int) -> bytes:
        while True:
            if self._current is None:
                if not self._pending:
                    return b""
                self._current = self._storage.open(self._pending.pop(0))
            chunk = self._current.read(size)
            if chunk:
                return chunk
            self._current.close()
            self._current = None
