"""A digest fed on another core while the request that reads the bytes goes on.

A whole-upload tus PATCH cut into several parts (on S3) hashes every byte twice:
each part for its row, and the file for finalize (PEP 0024). The file's digest runs
beside the part's. (On the filesystem such an upload is one part, hashed once.)
"""

from portal import threads


class BackgroundDigest:
    """A hashlib object whose ``update`` returns at once; one buffer is in flight at a
    time, so the bytes are hashed in order and memory stays one buffer."""

    def __init__(self, digest):
        self._digest = digest
        self._updates = threads.OneInFlight()

    def update(self, data: bytes) -> None:
        self._updates.start(self._digest.update, data)

    def hexdigest(self) -> str:
        self._updates.wait()
        return self._digest.hexdigest()
