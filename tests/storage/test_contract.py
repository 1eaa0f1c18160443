"""One contract, both adapters: every test runs on the filesystem and on S3 (moto's server)."""

import errno
import fcntl
import hashlib
import io
import os
import socket
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.config import Config
from django.test import override_settings

from portal.exceptions import InvalidStorageKey, ObjectMissing, PartTooLarge, StorageUnavailable
from portal.storage import StorageAdapter, keys
from portal.storage.filesystem import FilesystemStorage
from portal.storage.s3 import S3Storage
from tests.storage.faults import refuse_one_key

MiB = 1024**2
NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
FOREIGN_KEYS = ["../x", "/etc/passwd", "tmp/../files/x", "other/x.part", "tmp/", "", "tmp//x"]


class GeneratedStream:
    """``size`` bytes produced on demand, never held at once.

    Every 64 KiB block differs (it depends on ``seed`` and its position), so a lost,
    repeated or reordered piece changes the SHA-256.
    """

    BLOCK_SIZE = 64 * 1024

    def __init__(self, size: int, seed: int = 0):
        self.seed = seed
        self.remaining = size
        self.offset = 0

    def read(self, size: int = -1) -> bytes:
        index, start = divmod(self.offset, self.BLOCK_SIZE)
        size = self.remaining if size < 0 else size
        size = min(size, self.remaining, self.BLOCK_SIZE - start)
        block = hashlib.sha256(f"{self.seed}:{index}".encode()).digest() * (self.BLOCK_SIZE // 32)
        self.offset += size
        self.remaining -= size
        return block[start : start + size]


def generated_bytes(size: int, seed: int = 0) -> bytes:
    stream = GeneratedStream(size, seed)
    return b"".join(iter(lambda: stream.read(MiB), b""))


def read_all(storage, key) -> bytes:
    with storage.open(key) as body:
        return body.read()


def stream_digest(storage, key) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with storage.open(key) as body:
        while chunk := body.read(MiB):
            size += len(chunk)
            digest.update(chunk)
    return size, digest.hexdigest()


def write(storage, data: bytes, part_number=1, session_id=None):
    return storage.write_temp_part(
        session_id or uuid.uuid4(), part_number, io.BytesIO(data), max_bytes=len(data)
    )


def temp_keys(storage) -> list[str]:
    return [obj.key for obj in storage.iter_temp_objects(older_than=NOW + timedelta(days=3650))]


def test_both_adapters_satisfy_the_interface(storage):
    assert isinstance(storage, StorageAdapter)
    assert storage.backend in ("filesystem", "s3")


def test_round_trip_returns_size_and_sha256(storage):
    data = b"hello, portal"
    stored = write(storage, data, part_number=3)

    assert stored.size == len(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.key.startswith("tmp/")
    assert read_all(storage, stored.key) == data


def test_every_write_gets_a_fresh_key(storage):
    session_id = uuid.uuid4()
    first = write(storage, b"first", session_id=session_id)
    second = write(storage, b"second", session_id=session_id)

    assert first.key != second.key
    assert read_all(storage, first.key) == b"first"


def test_empty_part_round_trips(storage):
    stored = write(storage, b"")

    assert stored.size == 0
    assert read_all(storage, stored.key) == b""


def test_20_mib_stream_round_trips_in_flat_memory(storage):
    size = 20 * MiB
    expected = hashlib.sha256()
    source = GeneratedStream(size, seed=7)
    while chunk := source.read(MiB):
        expected.update(chunk)

    source = GeneratedStream(size, seed=7)
    write(storage, b"warm-up")  # an S3 client loads its service model once, not per part
    tracemalloc.start()
    try:
        stored = storage.write_temp_part(uuid.uuid4(), 1, source, max_bytes=size)
        read_size, read_digest = stream_digest(storage, stored.key)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert stored.size == read_size == size
    assert stored.sha256 == read_digest == expected.hexdigest()
    assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB"


@pytest.mark.parametrize("size", [10, 6 * MiB])
def test_too_large_part_leaves_nothing(storage, size):
    with pytest.raises(PartTooLarge):
        storage.write_temp_part(uuid.uuid4(), 1, GeneratedStream(size + 1), max_bytes=size)

    assert temp_keys(storage) == []
    if storage.backend == "s3":
        uploads = storage.client.list_multipart_uploads(Bucket=storage.bucket)
        assert uploads.get("Uploads", []) == []


class StreamBroke(Exception):
    pass


class BreakingStream(GeneratedStream):
    """A stream whose source fails after ``size`` bytes, like a client that went away."""

    def read(self, size: int = -1) -> bytes:
        if not self.remaining:
            raise StreamBroke
        return super().read(size)


@pytest.mark.parametrize("size", [10, 6 * MiB])
def test_a_failing_stream_leaves_nothing(storage, size):
    with pytest.raises(StreamBroke):
        storage.write_temp_part(uuid.uuid4(), 1, BreakingStream(size), max_bytes=10 * MiB)

    assert temp_keys(storage) == []
    if storage.backend == "s3":
        uploads = storage.client.list_multipart_uploads(Bucket=storage.bucket)
        assert uploads.get("Uploads", []) == []


def test_a_growing_part_reports_the_bytes_a_reader_gets(storage):
    data, reports = generated_bytes(5 * MiB + 3), []

    def on_written(key, size):
        assert read_all(storage, key)[:size] == data[:size]
        reports.append(size)
        return False

    stored = storage.write_temp_part(
        uuid.uuid4(), 1, io.BytesIO(data), max_bytes=len(data), on_written=on_written
    )

    # One buffer of 1 MiB is in flight behind the bytes reported; S3 reports nothing,
    # as a multipart upload in progress is no object.
    assert reports == ([1 * MiB, 2 * MiB, 3 * MiB, 4 * MiB] if storage.reports_written else [])
    assert read_all(storage, stored.key) == data


@pytest.mark.parametrize("recorded", [False, True])
def test_a_failing_stream_keeps_a_growing_part_only_once_the_caller_recorded_it(
    fs_storage, recorded
):
    with pytest.raises(StreamBroke):
        fs_storage.write_temp_part(
            uuid.uuid4(),
            1,
            BreakingStream(3 * MiB),
            max_bytes=10 * MiB,
            on_written=lambda key, size: recorded,
        )

    kept = temp_keys(fs_storage)
    assert len(kept) == recorded
    if recorded:
        assert read_all(fs_storage, kept[0]) == generated_bytes(3 * MiB)


def test_part_of_exactly_max_bytes_is_accepted(storage):
    stored = storage.write_temp_part(uuid.uuid4(), 1, GeneratedStream(MiB), max_bytes=MiB)

    assert stored.size == MiB


def test_open_of_a_missing_key_raises_object_missing(storage):
    with pytest.raises(ObjectMissing):
        storage.open(f"tmp/{uuid.uuid4()}/000001-missing.part")


def test_batch_delete_of_2500_keys(storage):
    keys = [write(storage, b"x", part_number=n).key for n in range(1, 2501)]
    calls = []
    if storage.backend == "s3":
        storage.client.meta.events.register(
            "before-call.s3.DeleteObjects", lambda **kwargs: calls.append(1)
        )

    result = storage.delete_many(iter(keys))

    assert result.ok
    assert sorted(result.deleted) == sorted(keys)
    assert temp_keys(storage) == []
    if storage.backend == "s3":
        assert len(calls) == 3


def test_missing_keys_count_as_deleted(storage):
    present = write(storage, b"x").key
    missing = f"tmp/{uuid.uuid4()}/000001-gone.part"

    result = storage.delete_many([present, missing])

    assert result.errors == {}
    assert set(result.deleted) == {present, missing}


def test_foreign_keys_are_refused_per_key(storage):
    present = write(storage, b"x").key

    result = storage.delete_many([*FOREIGN_KEYS, present])

    assert set(result.errors) == set(FOREIGN_KEYS)
    assert result.deleted == (present,)


def test_delete_many_refuses_final_keys(storage):
    final = storage.assemble_final(uuid.uuid4(), "a.bin", [write(storage, b"abc").key])

    result = storage.delete_many([final.key])

    assert list(result.errors) == [final.key]
    assert read_all(storage, final.key) == b"abc"


@pytest.mark.parametrize("key", FOREIGN_KEYS)
def test_open_refuses_keys_outside_the_prefixes(storage, key):
    with pytest.raises(InvalidStorageKey):
        storage.open(key)


@pytest.mark.parametrize("key", [*FOREIGN_KEYS, "tmp/x/000001-a.part"])
def test_delete_final_refuses_keys_outside_the_final_prefix(storage, key):
    with pytest.raises(InvalidStorageKey):
        storage.delete_final(key)


def test_listing_by_age(storage):
    old = write(storage, b"old")
    new = write(storage, b"new")
    if storage.backend == "filesystem":
        # The filesystem keeps any mtime we set, so two ages can be staged.
        for stored, when in ((old, NOW - timedelta(hours=2)), (new, NOW)):
            os.utime(storage.root / stored.key, (when.timestamp(), when.timestamp()))
        now, expected = NOW, {old.key}
    else:
        # S3 stamps LastModified itself with the real clock: both parts are "now".
        now, expected = datetime.now(UTC) + timedelta(hours=2), {old.key, new.key}

    listed = list(storage.iter_temp_objects(older_than=now - timedelta(hours=1)))

    assert {obj.key for obj in listed} == expected
    assert all(obj.size == 3 for obj in listed)
    assert all(obj.last_modified < now - timedelta(hours=1) for obj in listed)
    assert list(storage.iter_temp_objects(older_than=now - timedelta(hours=3))) == []


def test_objects_deleted_while_listing_are_skipped_not_an_error(storage):
    # Another cleanup run deletes parts from the folder (prefix) being listed.
    session_id = uuid.uuid4()
    parts = [write(storage, b"x", part_number=n, session_id=session_id).key for n in (1, 2, 3)]
    listing = storage.iter_temp_objects(older_than=NOW + timedelta(days=3650))

    first = next(listing).key
    storage.delete_many(key for key in parts if key != first)

    assert {first, *(obj.key for obj in listing)} <= set(parts)


def test_parts_share_a_shard_folder_named_by_the_session_id(storage):
    session_id = uuid.uuid4()

    key = write(storage, b"x", part_number=7, session_id=session_id).key

    assert key.startswith(f"tmp/{str(session_id)[-2:]}/{session_id}-000007-")
    assert key.endswith(".part")


def test_listing_ignores_final_objects(storage):
    part = write(storage, b"abc")
    storage.assemble_final(uuid.uuid4(), "a.bin", [part.key])

    assert temp_keys(storage) == [part.key]


def test_assemble_three_parts(storage):
    sizes = [5 * MiB, 5 * MiB, 3]
    session_id = uuid.uuid4()
    data = [generated_bytes(size, seed=n) for n, size in enumerate(sizes)]
    parts = [write(storage, chunk, n, session_id) for n, chunk in enumerate(data, start=1)]
    file_id = uuid.uuid4()

    final = storage.assemble_final(file_id, "report 2026.pdf", [p.key for p in parts])

    whole = b"".join(data)
    assert final.key == f"files/{file_id}/report_2026.pdf"
    assert final.size == len(whole)
    assert final.sha256 == hashlib.sha256(whole).hexdigest()
    assert read_all(storage, final.key) == whole
    assert set(temp_keys(storage)) == {p.key for p in parts}  # parts are the caller's to delete


def test_assemble_small_parts(storage):
    parts = [write(storage, chunk, n) for n, chunk in enumerate([b"ab", b"cd", b"e"], start=1)]

    final = storage.assemble_final(uuid.uuid4(), "small.txt", [p.key for p in parts])

    assert read_all(storage, final.key) == b"abcde"
    assert final.sha256 == hashlib.sha256(b"abcde").hexdigest()


def test_assemble_one_part(storage):
    part = write(storage, b"only part")

    final = storage.assemble_final(uuid.uuid4(), "one.txt", [part.key])

    assert (final.size, final.sha256) == (9, hashlib.sha256(b"only part").hexdigest())
    assert read_all(storage, final.key) == b"only part"


def test_assemble_takes_a_known_sha256_without_reading_the_file_back(storage):
    # Parts S3 can copy (a streamed fallback hashes on the way and needs no read-back).
    data = [generated_bytes(5 * MiB), b"cd"]
    parts = [write(storage, chunk, n) for n, chunk in enumerate(data, start=1)]
    claimed = "f" * 64  # not the bytes' digest: proves the adapter did not hash them

    final = storage.assemble_final(uuid.uuid4(), "a.bin", [p.key for p in parts], sha256=claimed)

    assert (final.size, final.sha256) == (5 * MiB + 2, claimed)
    assert read_all(storage, final.key) == b"".join(data)


def test_a_one_part_file_outlives_the_deleted_part(storage):
    part = write(storage, b"only part")
    final = storage.assemble_final(uuid.uuid4(), "one.txt", [part.key])

    storage.delete_many([part.key])

    assert read_all(storage, final.key) == b"only part"
    with pytest.raises(ObjectMissing):
        storage.open(part.key)


def test_assemble_no_parts_gives_an_empty_file(storage):
    final = storage.assemble_final(uuid.uuid4(), "empty.txt", [])

    assert (final.size, final.sha256) == (0, hashlib.sha256(b"").hexdigest())
    assert read_all(storage, final.key) == b""


def test_assemble_with_a_missing_part_raises_and_leaves_no_final(storage):
    part = write(storage, b"abc")
    missing = f"tmp/{uuid.uuid4()}/000002-gone.part"
    file_id = uuid.uuid4()

    with pytest.raises(ObjectMissing):
        storage.assemble_final(file_id, "x.bin", [part.key, missing])

    with pytest.raises(ObjectMissing):
        storage.open(f"files/{file_id}/x.bin")
    if storage.backend == "s3":
        assert storage.client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", []) == []


def test_assemble_of_one_missing_part_raises_and_leaves_no_final(storage):
    file_id = uuid.uuid4()

    with pytest.raises(ObjectMissing):
        storage.assemble_final(file_id, "x.bin", [f"tmp/{uuid.uuid4()}/000001-gone.part"])

    with pytest.raises(ObjectMissing):
        storage.open(f"files/{file_id}/x.bin")


def test_assemble_refuses_foreign_part_keys(storage):
    with pytest.raises(InvalidStorageKey):
        storage.assemble_final(uuid.uuid4(), "x.bin", ["tmp/../files/x"])


def test_delete_final(storage):
    final = storage.assemble_final(uuid.uuid4(), "a.bin", [write(storage, b"abc").key])

    storage.delete_final(final.key)
    storage.delete_final(final.key)  # missing counts as deleted

    with pytest.raises(ObjectMissing):
        storage.open(final.key)


def final_object(storage, body=b"abc"):
    return storage.assemble_final(uuid.uuid4(), "a.bin", [write(storage, body).key])


def test_delete_final_many_deletes_in_batches_and_counts_missing_as_deleted(storage):
    finals = [final_object(storage).key for _ in range(3)]
    missing = keys.final_key(storage.final_prefix, uuid.uuid4(), "gone.bin")
    calls = []
    if storage.backend == "s3":
        storage.client.meta.events.register(
            "before-call.s3.DeleteObjects", lambda **kwargs: calls.append(1)
        )

    result = storage.delete_final_many(iter([*finals, missing]))

    assert result.errors == {}
    assert set(result.deleted) == {*finals, missing}
    for key in finals:
        with pytest.raises(ObjectMissing):
            storage.open(key)
    assert calls == ([1] if storage.backend == "s3" else [])


def test_delete_final_many_refuses_foreign_and_temp_keys_and_touches_only_the_given(storage):
    kept = final_object(storage, b"planted").key  # not asked for: must survive
    temp = write(storage, b"part").key
    deleted = final_object(storage).key

    result = storage.delete_final_many([*FOREIGN_KEYS, temp, deleted])

    assert set(result.errors) == {*FOREIGN_KEYS, temp}
    assert result.deleted == (deleted,)
    assert read_all(storage, kept) == b"planted"
    assert read_all(storage, temp) == b"part"


def test_s3_delete_final_many_reports_a_key_s3_refuses_and_keeps_it(s3_storage):
    refused, deleted = final_object(s3_storage).key, final_object(s3_storage).key
    refuse_one_key(s3_storage, refused)

    result = s3_storage.delete_final_many([refused, deleted])

    assert result.errors == {refused: "AccessDenied"}
    assert result.deleted == (deleted,)
    assert read_all(s3_storage, refused) == b"abc"


def test_check_passes(storage):
    storage.check()


# -- readiness failures: how to break an adapter depends on the adapter ------------


def test_filesystem_check_fails_without_root(tmp_path):
    with pytest.raises(StorageUnavailable):
        FilesystemStorage(root=tmp_path / "missing").check()


def test_filesystem_check_fails_when_root_is_a_file(tmp_path):
    # Unlike a read-only directory, this fails for root too.
    root = tmp_path / "root"
    root.write_bytes(b"")

    with pytest.raises(StorageUnavailable):
        FilesystemStorage(root=root).check()


def test_filesystem_check_fails_on_a_read_only_root(read_only_root):
    with pytest.raises(StorageUnavailable):
        FilesystemStorage(root=read_only_root).check()


def test_filesystem_write_to_an_unwritable_root_raises_storage_unavailable(tmp_path):
    root = tmp_path / "root"
    root.write_bytes(b"")

    with pytest.raises(StorageUnavailable):
        FilesystemStorage(root=root).write_temp_part(uuid.uuid4(), 1, io.BytesIO(b"x"), max_bytes=1)


def test_filesystem_one_part_file_is_a_fresh_link_not_a_copy(fs_storage):
    part = write(fs_storage, b"only part")
    old = (NOW - timedelta(days=2)).timestamp()
    os.utime(fs_storage.root / part.key, (old, old))

    final = fs_storage.assemble_final(uuid.uuid4(), "one.txt", [part.key])

    stat = (fs_storage.root / final.key).stat()
    assert stat.st_ino == (fs_storage.root / part.key).stat().st_ino
    # Reconcile's orphan grace counts from the final object's mtime: it is now.
    assert stat.st_mtime > datetime.now(UTC).timestamp() - 60


@pytest.mark.parametrize("refused", [(os, "link"), (fcntl, "ioctl")], ids=["link", "clone"])
def test_filesystem_assembles_by_copying_where_the_kernel_cannot(fs_storage, monkeypatch, refused):
    # Hard links and shared extents (FICLONERANGE, an ioctl) refused, as across devices.
    def unsupported(*args):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(*refused, unsupported)
    for data in ([b"only part"], [b"ab", b"cd", b"e"]):
        parts = [write(fs_storage, chunk, n) for n, chunk in enumerate(data, start=1)]

        final = fs_storage.assemble_final(uuid.uuid4(), "a.bin", [p.key for p in parts])

        assert read_all(fs_storage, final.key) == b"".join(data)
        assert final.sha256 == hashlib.sha256(b"".join(data)).hexdigest()


CLIENT_SETTINGS = {
    "region_name": "AWS_S3_REGION_NAME",
    "aws_access_key_id": "AWS_ACCESS_KEY_ID",
    "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
}


def s3_adapter(s3_settings, overrides, **options):
    with override_settings(**{**s3_settings, **overrides}):
        return S3Storage(temp_prefix="tmp/", final_prefix="files/", **options)


def test_s3_check_fails_for_a_missing_bucket(s3_settings):
    storage = s3_adapter(s3_settings, {"AWS_STORAGE_BUCKET_NAME": "no-such-bucket-here"})

    with pytest.raises(StorageUnavailable):
        storage.check()


def test_s3_check_fails_without_a_bucket_name(s3_settings):
    storage = s3_adapter(s3_settings, {"AWS_STORAGE_BUCKET_NAME": ""})

    with pytest.raises(StorageUnavailable):
        storage.check()


@pytest.fixture
def refused_endpoint():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def silent_endpoint():
    """A server that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_s3_errors_become_storage_unavailable_when_the_server_is_down(
    s3_settings, refused_endpoint
):
    # One attempt per call keeps the test short; retries are botocore's business.
    client = boto3.client(
        "s3",
        endpoint_url=refused_endpoint,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
        **{name: s3_settings[setting] for name, setting in CLIENT_SETTINGS.items()},
    )
    storage = s3_adapter(s3_settings, {"AWS_S3_ENDPOINT_URL": refused_endpoint}, client=client)
    key = f"tmp/{uuid.uuid4()}/000001-a.part"

    with pytest.raises(StorageUnavailable):
        storage.check()
    with pytest.raises(StorageUnavailable):
        storage.open(key)
    with pytest.raises(StorageUnavailable):
        write(storage, b"abc")
    with pytest.raises(StorageUnavailable):
        list(storage.iter_temp_objects(older_than=NOW))
    with pytest.raises(StorageUnavailable):
        storage.delete_final(f"files/{uuid.uuid4()}/a.bin")
    result = storage.delete_many([key, "../x"])
    assert set(result.errors) == {key, "../x"}
    assert result.deleted == ()


def test_s3_check_gives_up_on_a_server_that_never_answers(s3_settings, silent_endpoint):
    storage = s3_adapter(
        s3_settings,
        {"AWS_S3_ENDPOINT_URL": silent_endpoint},
        check_connect_timeout=0.1,
        check_read_timeout=0.1,
    )

    with pytest.raises(StorageUnavailable):
        storage.check()


# -- ownership: what the adapter writes, and what it lists ----------------------------


def test_every_part_key_written_is_of_the_shape_cleanup_proves_ownership_by(storage):
    session_id = uuid.uuid4()

    keys_written = [
        write(storage, b"x", part_number=number, session_id=session_id).key
        for number in (1, 42, 10_000)
    ]

    parsed = [keys.parse_temp_part_key(key, storage.temp_prefix) for key in keys_written]
    assert parsed == [(str(session_id), 1), (str(session_id), 42), (str(session_id), 10_000)]


def test_listing_yields_foreign_objects_under_the_temp_prefix_too(storage):
    # The adapter lists every object under the prefix; deciding which are the portal's
    # (and counting the rest as foreign) is cleanup's job, so none is hidden from it.
    own = write(storage, b"x").key
    foreign = ["tmp/notmine.png", "tmp/ab/backup.tar"]
    for key in foreign:
        if storage.backend == "filesystem":
            (storage.root / key).parent.mkdir(parents=True, exist_ok=True)
            (storage.root / key).write_bytes(b"y")
        else:
            storage.client.put_object(Bucket=storage.bucket, Key=key, Body=b"y")

    listed = set(temp_keys(storage))

    assert listed == {own, *foreign}
    assert [k for k in listed if keys.parse_temp_part_key(k, storage.temp_prefix)] == [own]
