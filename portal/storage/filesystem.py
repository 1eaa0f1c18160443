"""Storage on a local (or mounted) filesystem."""

import contextlib
import errno
import hashlib
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from portal.exceptions import (
    InvalidStorageKey,
    ObjectMissing,
    PartTooLarge,
    StorageError,
    StorageUnavailable,
)
from portal.storage import direct_io, keys
from portal.storage.base import COPY_BUFFER_SIZE, LIST_PAGE_SIZE, DeleteResult, StoredObject


class FilesystemStorage:
    backend = "filesystem"
    bucket = ""
    reports_written = True  # a part is a file, readable as it grows

    def __init__(self, *, root, temp_prefix="tmp/", final_prefix="files/", direct_io=True):
        self.root = Path(root).resolve()
        self.direct_io = direct_io  # around the page cache (portal.storage.direct_io)
        self.temp_prefix = keys.normalise_prefix(temp_prefix)
        self.final_prefix = keys.normalise_prefix(final_prefix)

    # -- keys ---------------------------------------------------------------

    def _path(self, key: str, *prefixes: str) -> Path:
        keys.validate_key(key, *(prefixes or (self.temp_prefix, self.final_prefix)))
        return self.root / key

    # -- writing ------------------------------------------------------------

    def write_temp_part(self, session_id, part_number, stream, *, max_bytes, on_written=None):
        key = keys.temp_part_key(self.temp_prefix, session_id, part_number)
        path = self._path(key, self.temp_prefix)
        recorded = False  # on_written said the caller points at the object: keep it

        def written(size: int) -> None:
            nonlocal recorded
            recorded = bool(on_written(key, size)) or recorded

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            size, digest = self._copy(
                stream, path, max_bytes=max_bytes, written=written if on_written else None
            )
        except BaseException as exc:  # a write failed, or the stream (the client went away)
            if not recorded:
                _discard(path)
            if isinstance(exc, OSError):
                raise StorageUnavailable(f"cannot write {key}: {exc.strerror}") from exc
            raise
        return StoredObject(key=key, size=size, sha256=digest)

    def _copy(
        self, stream: BinaryIO, path: Path, *, max_bytes: int | None, written: Callable | None
    ) -> tuple[int, str]:
        digest = hashlib.sha256()
        size = reported = 0
        with direct_io.DirectWriter(path, direct=self.direct_io) as out:
            while chunk := stream.read(COPY_BUFFER_SIZE):
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise PartTooLarge(f"part is larger than {max_bytes} bytes")
                digest.update(chunk)
                out.write(chunk)
                if written is not None and out.written > reported:
                    reported = out.written
                    written(reported)
        return size, digest.hexdigest()

    def assemble_final(self, file_id, filename, part_keys, *, sha256=""):
        key = keys.final_key(self.final_prefix, file_id, filename)
        path = self._path(key, self.final_prefix)
        # Write beside the target and rename: readers never see a half-written file.
        partial = path.with_name(f".{uuid.uuid4().hex}.partial")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            digest = sha256
            if len(part_keys) != 1 or not self._link(part_keys[0], partial):
                sources = [self._existing_path(part_key) for part_key in part_keys]
                copied = direct_io.concatenate(
                    sources, partial, hash_bytes=not sha256, direct=self.direct_io
                )
                digest = sha256 or copied
            size = os.stat(partial).st_size
            digest = digest or _sha256_of(partial)
            os.replace(partial, path)
        except OSError as exc:
            _discard(partial)
            raise StorageUnavailable(f"cannot assemble {key}: {exc.strerror}") from exc
        except StorageError:  # a part missing, or a key outside the prefixes
            _discard(partial)
            raise
        return StoredObject(key=key, size=size, sha256=digest)

    def _link(self, part_key: str, target: Path) -> bool:
        """A one-part file becomes a second name of the part's bytes: no copy.

        Safe because a temp part is never written again once stored, and deleting
        its temp name (cleanup) leaves the final name's bytes. False where the
        filesystem has no hard links (the caller copies instead).
        """
        source = self._path(part_key)
        try:
            os.link(source, target)
        except FileNotFoundError as exc:
            raise ObjectMissing(part_key) from exc
        except OSError as exc:
            if exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                return False
            raise
        # The final object is new: its age (reconcile's orphan grace) starts now.
        os.utime(target)
        return True

    def _existing_path(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise ObjectMissing(key)
        return path

    # -- reading ------------------------------------------------------------

    def open(self, key):
        path = self._path(key)
        try:
            return open(path, "rb")
        except FileNotFoundError as exc:
            raise ObjectMissing(key) from exc
        except OSError as exc:
            raise StorageUnavailable(f"cannot open {key}: {exc.strerror}") from exc

    def iter_temp_objects(self, *, older_than: datetime) -> Iterator[StoredObject]:
        cutoff = older_than.timestamp()
        for path, stat in self._scan(self.temp_prefix):
            if stat.st_mtime < cutoff:
                yield self._object(path, stat)

    def iter_final_pages(self, *, page_size=LIST_PAGE_SIZE) -> Iterator[list[StoredObject]]:
        page = []
        for path, stat in self._scan(self.final_prefix):
            page.append(self._object(path, stat))
            if len(page) == page_size:
                yield page
                page = []
        if page:
            yield page

    def _scan(self, prefix: str) -> Iterator[tuple[str, os.stat_result]]:
        """Every file under ``prefix`` with its stat, depth first."""
        return self._scan_folder(os.path.join(self.root, prefix))

    def _scan_folder(self, directory: str) -> Iterator[tuple[str, os.stat_result]]:
        # os.scandir is lazy and subfolders are entered as they come, not collected:
        # memory is one open folder per level however many files and folders there are.
        try:
            entries = os.scandir(directory)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageUnavailable(f"cannot list {directory}: {exc.strerror}") from exc
        with entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    yield from self._scan_folder(entry.path)
                    continue
                try:
                    stat = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # deleted since the folder was read, e.g. by another run
                yield entry.path, stat

    def _object(self, path: str, stat: os.stat_result) -> StoredObject:
        # String slicing, not Path.relative_to: listings run once per object.
        return StoredObject(
            key=path[len(str(self.root)) + 1 :].replace(os.sep, "/"),
            size=stat.st_size,
            last_modified=datetime.fromtimestamp(stat.st_mtime, tz=UTC),
        )

    # -- deleting -----------------------------------------------------------

    def delete_many(self, keys_to_delete: Iterable[str]) -> DeleteResult:
        return self._delete_keys(keys_to_delete, self.temp_prefix)

    def delete_final_many(self, keys_to_delete: Iterable[str]) -> DeleteResult:
        return self._delete_keys(keys_to_delete, self.final_prefix)

    def _delete_keys(self, keys_to_delete: Iterable[str], prefix: str) -> DeleteResult:
        deleted, errors = [], {}
        # String paths, not Paths: this loop runs once per part in cleanup.
        root = os.path.join(self.root, "")
        for key in keys_to_delete:
            try:
                os.unlink(root + keys.validate_key(key, prefix))
            except InvalidStorageKey as exc:
                errors[key] = str(exc)
                continue
            except FileNotFoundError:
                pass  # already gone counts as deleted
            except OSError as exc:
                errors[key] = exc.strerror or exc.__class__.__name__
                continue
            deleted.append(key)
        return DeleteResult(deleted=tuple(deleted), errors=errors)

    def delete_final(self, key):
        try:
            self._path(key, self.final_prefix).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"cannot delete {key}: {exc.strerror}") from exc

    # -- readiness ----------------------------------------------------------

    def check(self):
        if not self.root.is_dir():
            raise StorageUnavailable(f"storage root {self.root} does not exist")
        probe = self.root / f".ready-{uuid.uuid4().hex}"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise StorageUnavailable(f"storage root {self.root} is not writable") from exc


def _sha256_of(path: Path) -> str:
    """Hash a file through one reused buffer (no allocation per read)."""
    digest = hashlib.sha256()
    buffer = bytearray(COPY_BUFFER_SIZE)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as source:
        while size := source.readinto(buffer):
            digest.update(view[:size])
    return digest.hexdigest()


def _discard(path: Path) -> None:
    """Remove a half-written file; the failure being handled may mean there is none."""
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)
