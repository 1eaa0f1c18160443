"""Writing the filesystem adapter's files around the page cache.

Temp parts and final files are written once and read once (a part by assembly, a
final file by the runner, much later), so caching them buys nothing, and filling
new page-cache pages is the dominant cost of a write on a virtual machine: a first
write into fresh pages runs at a fifth of the speed of a direct one here (PEP 0024).
So both are written with ``O_DIRECT`` through page-aligned buffers, and parts are
read back the same way. MinIO writes its objects with ``O_DIRECT`` for the same
reason. A filesystem that refuses ``O_DIRECT``, or a block size the buffer does not
meet, gets the same bytes through ordinary buffered I/O, as does every file when
``PORTAL_STORAGE_DIRECT_IO`` is off (a slow network disk, where the page cache lets a
burst of uploads run ahead of the device).

Joining parts (``concatenate``) first tries shared extents (``FICLONERANGE``, XFS and
Btrfs): the final file's blocks are then the parts' blocks, and no byte is copied.
"""

import errno
import fcntl
import hashlib
import mmap
import os
import struct
from pathlib import Path

from portal import threads
from portal.storage.base import COPY_BUFFER_SIZE

# Each writer has two, whose pages are touched only as bytes arrive: an upload
# that has sent little holds little.
BUFFER_SIZE = COPY_BUFFER_SIZE
O_DIRECT = getattr(os, "O_DIRECT", 0)  # Linux; elsewhere all I/O here is buffered
# _IOW(0x94, 13, struct file_clone_range) from linux/fs.h.
FICLONERANGE = 0x4020940D
# Errors meaning "these files cannot share extents here", not a failure.
CLONE_UNSUPPORTED = frozenset(
    {errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EPERM}
)


class DirectWriter:
    """A new file (``O_EXCL``) written through two page-aligned buffers.

    Whole buffers go to the file at offsets that are multiples of the buffer size,
    as ``O_DIRECT`` requires, each on a native thread while the other buffer fills
    (a direct write waits for the device); only the last, partial buffer is written
    buffered.
    """

    def __init__(self, path: Path, *, direct: bool = True):
        self.direct = direct
        self.fd = _open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, direct=direct)
        # mmap memory is page-aligned (a bytearray's is not).
        self.buffers = [mmap.mmap(-1, BUFFER_SIZE) for _ in range(2)]
        self.views = [memoryview(buffer) for buffer in self.buffers]
        self.view = self.views[0]
        self.filled = 0
        self.writes = threads.OneInFlight()  # the other buffer's
        self.submitted = 0  # bytes of the buffers handed to a write
        self.written = 0  # bytes whose write has returned: readable in the file

    def write(self, data) -> None:
        data = memoryview(data)
        while data:
            size = min(len(data), len(self.view) - self.filled)
            self.view[self.filled : self.filled + size] = data[:size]
            data = data[size:]
            self._advance(size)

    def copy_from(self, source: Path, digest) -> None:
        """Append all of ``source``, read around the page cache too; hash it into
        ``digest`` unless that is None."""
        fd = _open(source, os.O_RDONLY, direct=self.direct)
        try:
            while True:
                # Views of a buffer are released as they go: close() cannot unmap it
                # while one lives on (in a traceback, say).
                with self.view[self.filled :] as free:
                    try:
                        size = os.readv(fd, [free])
                    except OSError as exc:
                        # An unaligned position in the buffer (after a part of an odd length).
                        if exc.errno != errno.EINVAL or not _drop_direct(fd):
                            raise
                        continue
                    if digest is not None and size:
                        with free[:size] as read:
                            digest.update(read)
                if not size:
                    return
                self._advance(size)
        finally:
            os.close(fd)

    def _advance(self, size: int) -> None:
        self.filled += size
        if self.filled == len(self.view):
            self._wait()
            self.written = self.submitted
            self.writes.start(_write_all, self.fd, self.view)
            self.submitted += len(self.view)
            self.views.reverse()
            self.view = self.views[0]
            self.filled = 0

    def _wait(self) -> None:
        try:
            self.writes.wait()
        except BaseException:
            self.filled = 0  # the file is broken: close() writes nothing more
            raise

    def close(self) -> None:
        """Write what is left and close; safe to call again."""
        if self.fd < 0:
            return
        try:
            self._wait()
            if self.filled:
                _drop_direct(self.fd)  # the tail is not a whole block
                with self.view[: self.filled] as tail:
                    _write_all(self.fd, tail)
        finally:
            os.close(self.fd)
            self.fd = -1
            for view in self.views:
                view.release()
            for buffer in self.buffers:
                buffer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def concatenate(sources: list[Path], target: Path, *, hash_bytes: bool, direct: bool = True) -> str:
    """Write ``sources`` one after another into the new file ``target``.

    Returns the SHA-256 of the bytes when ``hash_bytes`` and the bytes were copied;
    "" when they were not hashed or were cloned (no byte passed by to hash: the
    caller reads the file if it needs the digest).
    """
    if _clone(sources, target):
        return ""
    digest = hashlib.sha256() if hash_bytes else None
    with DirectWriter(target, direct=direct) as out:
        for source in sources:
            out.copy_from(source, digest)
    return digest.hexdigest() if digest is not None else ""


def _clone(sources: list[Path], target: Path) -> bool:
    """Share the parts' extents into ``target``; False (and no file) where it cannot."""
    out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    offset = 0
    try:
        for source in sources:
            with open(source, "rb") as part:
                length = os.fstat(part.fileno()).st_size
                # Length 0 means "to the end of the source"; an empty part has no extents.
                if length:
                    args = struct.pack("qQQQ", part.fileno(), 0, length, offset)
                    fcntl.ioctl(out, FICLONERANGE, args)
                offset += length
    except OSError as exc:
        os.close(out)
        target.unlink()
        if exc.errno in CLONE_UNSUPPORTED:  # e.g. ext4, or a part of an odd length
            return False
        raise
    os.close(out)
    return True


def _open(path: Path, flags: int, *, direct: bool) -> int:
    if direct and O_DIRECT:
        try:
            return os.open(path, flags | O_DIRECT, 0o666)
        except OSError as exc:
            if exc.errno != errno.EINVAL:  # EINVAL: this filesystem has no O_DIRECT
                raise
    return os.open(path, flags, 0o666)


def _write_all(fd: int, data: memoryview) -> None:
    written = 0
    while written < len(data):
        try:
            written += os.write(fd, data[written:])
        except OSError as exc:
            # A block size larger than the buffer's alignment: go on buffered.
            if exc.errno != errno.EINVAL or not _drop_direct(fd):
                raise


def _drop_direct(fd: int) -> bool:
    """Turn O_DIRECT off on ``fd``; False if it was not on."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    if not flags & O_DIRECT:
        return False
    fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~O_DIRECT)
    return True
