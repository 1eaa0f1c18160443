"""Files written around the page cache (``portal.storage.direct_io``): every byte once,
in order, whatever the sizes and whatever the filesystem offers."""

import errno
import hashlib
import io
import os
import shutil
import uuid
from pathlib import Path

import pytest

from portal.storage import build_storage, direct_io

KiB = 1024
MiB = 1024 * KiB
# Sizes that cross, meet and miss the copy buffer and the 4 KiB O_DIRECT block.
ODD_SIZES = [0, 1, 4 * KiB - 1, 4 * KiB + 1, MiB, MiB + 3, 2 * MiB + MiB // 2, 7]


def write_parts(folder: Path, sizes: list[int]) -> tuple[list[Path], bytes]:
    parts, whole = [], b""
    for number, size in enumerate(sizes, start=1):
        data = os.urandom(size)
        part = folder / f"part-{number}"
        part.write_bytes(data)
        parts.append(part)
        whole += data
    return parts, whole


def test_parts_of_any_size_join_byte_for_byte_with_their_sha256(tmp_path):
    parts, whole = write_parts(tmp_path, ODD_SIZES)

    digest = direct_io.concatenate(parts, tmp_path / "final", hash_bytes=True)

    assert (tmp_path / "final").read_bytes() == whole
    assert digest == hashlib.sha256(whole).hexdigest()


def test_a_known_digest_is_not_computed_again(tmp_path):
    parts, whole = write_parts(tmp_path, [MiB, MiB + 1])

    assert direct_io.concatenate(parts, tmp_path / "final", hash_bytes=False) == ""
    assert (tmp_path / "final").read_bytes() == whole


def test_an_existing_target_is_never_overwritten(tmp_path):
    parts, _ = write_parts(tmp_path, [10])
    (tmp_path / "final").write_bytes(b"someone else's")

    with pytest.raises(FileExistsError):
        direct_io.concatenate(parts, tmp_path / "final", hash_bytes=True)
    assert (tmp_path / "final").read_bytes() == b"someone else's"


def test_a_filesystem_without_o_direct_gets_the_same_bytes(tmp_path, monkeypatch):
    # Every filesystem on the test machines accepts O_DIRECT (tmpfs too, since Linux
    # 6.6), so the refusal some FUSE and network filesystems give is simulated.
    real_open = os.open

    def open_refusing_o_direct(path, flags, *args):
        if flags & direct_io.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args)

    monkeypatch.setattr(direct_io.os, "open", open_refusing_o_direct)
    parts, whole = write_parts(tmp_path, ODD_SIZES)

    digest = direct_io.concatenate(parts, tmp_path / "final", hash_bytes=True)

    assert (tmp_path / "final").read_bytes() == whole
    assert digest == hashlib.sha256(whole).hexdigest()


def test_a_block_size_larger_than_the_buffer_alignment_falls_back_to_buffered(
    tmp_path, monkeypatch
):
    # A device whose logical block is larger than a page cannot be had here: its
    # EINVAL on the first direct write is simulated.
    real_write = os.write
    refused = []

    def write_refusing_direct(fd, data):
        if direct_io.fcntl.fcntl(fd, direct_io.fcntl.F_GETFL) & direct_io.O_DIRECT:
            refused.append(len(data))
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(direct_io.os, "write", write_refusing_direct)
    parts, whole = write_parts(tmp_path, [3 * MiB, 5])

    direct_io.concatenate(parts, tmp_path / "final", hash_bytes=False)

    assert refused == [direct_io.BUFFER_SIZE]
    assert (tmp_path / "final").read_bytes() == whole


def test_where_extents_cannot_be_shared_the_bytes_are_copied_and_hashed(tmp_path):
    parts, whole = write_parts(tmp_path, [MiB, MiB])

    # The test machines' tmp folder is on ext4, which has no shared extents.
    assert not direct_io._clone(parts, tmp_path / "final")
    assert not (tmp_path / "final").exists()  # nothing half-made is left behind
    digest = direct_io.concatenate(parts, tmp_path / "final", hash_bytes=True)
    assert digest == hashlib.sha256(whole).hexdigest()


def test_writes_of_any_sizes_land_in_order(tmp_path):
    pieces = [os.urandom(size) for size in (1, 4 * KiB, MiB - 1, 2 * MiB + 7, 0, 3)]

    with direct_io.DirectWriter(tmp_path / "part") as out:
        for piece in pieces:
            out.write(piece)

    assert (tmp_path / "part").read_bytes() == b"".join(pieces)


REFLINK_DIR = os.environ.get("PORTAL_TEST_REFLINK_DIR")


@pytest.mark.skipif(
    not REFLINK_DIR,
    reason="PORTAL_TEST_REFLINK_DIR (a folder on XFS or Btrfs) is not set; .ci/run mounts one",
)
class TestOnAReflinkFilesystem:
    @pytest.fixture
    def folder(self):
        folder = Path(REFLINK_DIR) / f"concat-{uuid.uuid4().hex}"
        folder.mkdir()
        yield folder
        shutil.rmtree(folder)

    def test_block_aligned_parts_share_their_extents_instead_of_being_copied(self, folder):
        parts, whole = write_parts(folder, [8 * MiB, 8 * MiB, 3 * MiB + 5])
        os.sync()
        free_before = os.statvfs(folder).f_bfree

        assert direct_io.concatenate(parts, folder / "final", hash_bytes=True) == ""

        os.sync()
        used = (free_before - os.statvfs(folder).f_bfree) * os.statvfs(folder).f_frsize
        assert used < MiB  # a copy would have taken 19 MiB
        assert (folder / "final").read_bytes() == whole

    def test_parts_of_odd_lengths_cannot_be_cloned_and_are_copied(self, folder):
        parts, whole = write_parts(folder, [MiB + 1, MiB])

        digest = direct_io.concatenate(parts, folder / "final", hash_bytes=True)

        assert digest == hashlib.sha256(whole).hexdigest()
        assert (folder / "final").read_bytes() == whole


def test_a_write_failing_on_its_thread_fails_the_writer_and_frees_its_buffers(
    tmp_path, monkeypatch
):
    # A full disk is simulated: whole buffers are written on a native thread, so the
    # error surfaces at the writer's next step, not in the thread.
    def write_failing(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(direct_io, "_write_all", write_failing)
    out = direct_io.DirectWriter(tmp_path / "part")
    fd = out.fd

    with pytest.raises(OSError, match="No space left"):
        out.write(os.urandom(3 * MiB))
        out.close()
    out.close()

    assert out.fd == -1
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(fd)
    assert all(buffer.closed for buffer in out.buffers)


def test_with_direct_io_off_the_adapter_never_asks_for_o_direct(tmp_path, monkeypatch, settings):
    settings.PORTAL_STORAGE_BACKEND = "filesystem"
    settings.PORTAL_STORAGE_ROOT = str(tmp_path)
    settings.PORTAL_STORAGE_DIRECT_IO = False
    real_open = os.open
    flags_asked = []

    def recording_open(path, flags, *args):
        flags_asked.append(flags)
        return real_open(path, flags, *args)

    monkeypatch.setattr(direct_io.os, "open", recording_open)
    storage = build_storage()
    data = [os.urandom(size) for size in (MiB, MiB, 5)]
    parts = [
        storage.write_temp_part(uuid.uuid4(), n, io.BytesIO(chunk), max_bytes=None)
        for n, chunk in enumerate(data, start=1)
    ]

    final = storage.assemble_final(uuid.uuid4(), "a.bin", [part.key for part in parts])

    assert flags_asked and not any(flags & direct_io.O_DIRECT for flags in flags_asked)
    assert (tmp_path / final.key).read_bytes() == b"".join(data)
    assert final.sha256 == hashlib.sha256(b"".join(data)).hexdigest()
