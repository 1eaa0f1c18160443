"""The one small interface every storage adapter satisfies.

Keys are relative, ``/``-separated and always start with the adapter's temp or
final prefix. Adapters build keys from ids themselves and refuse any key that
would leave its prefix, so no caller can reach outside the storage root.
"""

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO, Protocol, runtime_checkable

# Streams are copied in pieces of this size: memory stays flat whatever the part size.
COPY_BUFFER_SIZE = 1024 * 1024
# S3 DeleteObjects takes at most 1,000 keys per call; the filesystem follows suit.
DELETE_BATCH_SIZE = 1000
# Listings come in pages of at most this many objects (S3's own maximum).
LIST_PAGE_SIZE = 1000


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    sha256: str = ""
    last_modified: datetime | None = None


@dataclass(frozen=True)
class DeleteResult:
    """Outcome of ``delete_many``: missing keys count as deleted; errors map key → reason."""

    deleted: tuple[str, ...] = ()
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


@runtime_checkable
class StorageAdapter(Protocol):
    backend: str  # "filesystem" or "s3"
    bucket: str  # "" on the filesystem
    # Whether write_temp_part calls ``on_written``: a part can be read while it is
    # written (a file can; an S3 multipart upload is no object until it completes).
    reports_written: bool

    def write_temp_part(
        self,
        session_id,
        part_number: int,
        stream: BinaryIO,
        *,
        max_bytes: int,
        on_written: Callable[[str, int], bool] | None = None,
    ) -> StoredObject:
        """Stream one part to a new, unique temp key, computing its size and SHA-256.

        Raises ``PartTooLarge`` (and keeps nothing) when the stream holds more than
        ``max_bytes``. Where ``reports_written``, ``on_written(key, size)`` is called as
        the object grows, ``size`` being bytes that reading it now returns; once it
        answers True the caller points at the object, and a write that fails keeps it.
        """

    def open(self, key: str) -> BinaryIO:
        """Open an object for reading; ``ObjectMissing`` if absent."""

    def delete_many(self, keys: Iterable[str]) -> DeleteResult:
        """Delete temp objects in batches; per-key errors are returned, not raised."""

    def iter_temp_objects(self, *, older_than: datetime) -> Iterator[StoredObject]:
        """Yield temp objects last modified before ``older_than``, page by page."""

    def iter_final_pages(self, *, page_size: int = LIST_PAGE_SIZE) -> Iterator[list[StoredObject]]:
        """Yield every object under the final prefix (whatever its shape), one page of at
        most ``page_size`` at a time, in no promised order; memory stays one page."""

    def assemble_final(
        self, file_id, filename: str, part_keys: list[str], *, sha256: str = ""
    ) -> StoredObject:
        """Concatenate temp parts, in the given order, into the final object (with SHA-256).

        ``sha256``, when the caller already hashed exactly these bytes in this order,
        is taken as the final object's digest instead of reading the object back.
        """

    def delete_final(self, key: str) -> None:
        """Delete a final object; missing counts as deleted."""

    def delete_final_many(self, keys: Iterable[str]) -> DeleteResult:
        """Delete final objects in batches, as ``delete_many`` does temp objects: missing
        counts as deleted, per-key errors (a key outside the final prefix among them) are
        returned, not raised."""

    def check(self) -> None:
        """A cheap readiness probe; raises ``StorageUnavailable``."""
