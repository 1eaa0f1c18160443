"""An upload sent whole in one PATCH on the filesystem: one part, recorded as it grows.

Parts of at most 2 MiB here (``PORTAL_CHUNK_SIZE_MAX``): a whole upload of 8 MiB is one
part of 8 MiB, recorded as the tail every 2 MiB while it is written (PEP 0024, "One
part for an upload sent whole").
"""

import hashlib
import os

import pytest
from django.test import override_settings

from portal.exceptions import Conflict
from portal.models import TusUpload, UploadPart, UploadSession
from portal.services import tus as tus_service
from portal.services import tus_body
from portal.storage import direct_io
from portal.views.tus import parse_checksum
from tests.api.conftest import temp_objects
from tests.tus.conftest import checksum, path_of, stored_bytes, stored_events

pytestmark = pytest.mark.django_db

MiB = 1024 * 1024
DATA = os.urandom(8 * MiB)


@pytest.fixture(autouse=True)
def mib_limits():
    with override_settings(
        PORTAL_CHUNK_SIZE=MiB,
        PORTAL_CHUNK_SIZE_MIN=MiB,
        PORTAL_CHUNK_SIZE_MAX=2 * MiB,
        PORTAL_MAX_FILE_SIZE=16 * MiB,
    ):
        yield


class ServerDied(BaseException):
    """The worker killed mid-body: no handler of the portal's runs after it."""


class Body:
    """``data`` as a request body; after ``good`` bytes, ``then()`` runs and its result
    (an exception) is raised, or reading goes on if it returns None."""

    def __init__(self, data: bytes, good: int, then):
        self.data, self.good, self.sent, self.then = data, good, 0, then

    def read(self, size=-1):
        if self.sent >= self.good and self.then is not None:
            error, self.then = self.then(), None
            if error is not None:
                raise error
        end = len(self.data) if size < 0 else self.sent + size
        if self.then is not None:
            end = min(end, self.good)
        piece = self.data[self.sent : end]
        self.sent += len(piece)
        return piece


def upload_id(url: str) -> str:
    return url.rsplit("/", 1)[1]


def append(user, url, offset, body, length, **kwargs):
    return tus_service.append(
        user=user,
        upload_id=upload_id(url),
        offset=offset,
        stream=body,
        content_length=length,
        **kwargs,
    )


def test_a_whole_upload_is_one_part_that_becomes_the_file_without_a_copy_or_a_second_hash(
    tus, fs_storage, monkeypatch
):
    def no_copy(*args, **kwargs):
        raise AssertionError("a one-part file is linked, not copied")

    def no_second_hash(*args, **kwargs):
        raise AssertionError("a one-part file is hashed once, as its part")

    monkeypatch.setattr(direct_io, "concatenate", no_copy)
    monkeypatch.setattr(tus_body, "BackgroundDigest", no_second_hash)
    url = path_of(tus.create(len(DATA)))

    assert tus.patch(url, 0, DATA).status_code == 204

    session = UploadSession.objects.get(pk=upload_id(url))
    assert (session.chunk_size_bytes, session.total_parts) == (len(DATA), 1)
    assert list(UploadPart.objects.values_list("size_bytes", flat=True)) == [len(DATA)]
    assert stored_bytes(fs_storage, upload_id(url)) == DATA
    [event] = stored_events()
    assert event.payload["file"]["sha256"] == hashlib.sha256(DATA).hexdigest()
    assert TusUpload.objects.get().tail_key == ""  # the checkpoints' tail is the part now


def test_a_server_that_dies_mid_part_keeps_the_bytes_it_recorded(
    tus, tus_user, fs_storage, storage_root
):
    url = path_of(tus.create(len(DATA)))
    # Seven whole buffers of 1 MiB handed in: six written, recorded at 2, 4 and 6 MiB.
    with pytest.raises(ServerDied):
        append(tus_user, url, 0, Body(DATA, 7 * MiB + 100, ServerDied), len(DATA))

    assert tus.head(url)["Upload-Offset"] == str(6 * MiB)
    tail = TusUpload.objects.get()
    assert temp_objects(fs_storage) == [tail.tail_key]  # the object that died, kept
    foreign = storage_root / tail.tail_key.rsplit("/", 1)[0] / "operator-notes.txt"
    foreign.write_text("not the portal's")

    assert tus.patch(url, 6 * MiB, DATA[6 * MiB :]).status_code == 204

    assert stored_bytes(fs_storage, upload_id(url)) == DATA
    assert len(stored_events()) == 1
    part, notes = UploadPart.objects.get(), str(foreign.relative_to(storage_root))
    # The old tail is gone, the object beside it the portal never made is not.
    assert sorted(temp_objects(fs_storage)) == sorted([part.temp_storage_key, notes])
    assert foreign.read_text() == "not the portal's"


def test_a_client_that_hangs_up_mid_part_keeps_all_that_arrived(tus, tus_user, fs_storage):
    url = path_of(tus.create(len(DATA)))

    state = append(tus_user, url, 0, Body(DATA, 5 * MiB + 7, ConnectionResetError), len(DATA))

    assert state.offset == int(tus.head(url)["Upload-Offset"]) == 5 * MiB + 7
    assert len(temp_objects(fs_storage)) == 1
    assert tus.patch(url, state.offset, DATA[state.offset :]).status_code == 204
    assert stored_bytes(fs_storage, upload_id(url)) == DATA


def test_a_patch_that_finds_another_moved_on_at_a_checkpoint_is_409_and_keeps_its_tail(
    tus, tus_user, fs_storage
):
    url = path_of(tus.create(len(DATA)))

    def another_patch():
        # A client that gave up on the first PATCH resumes from the recorded 2 MiB.
        assert tus.head(url)["Upload-Offset"] == str(2 * MiB)
        assert tus.patch(url, 2 * MiB, DATA[2 * MiB : 3 * MiB]).status_code == 204

    with pytest.raises(Conflict):
        append(tus_user, url, 0, Body(DATA, 3 * MiB + 1, another_patch), len(DATA))

    # The first PATCH stopped at its next checkpoint; the second's tail is the upload's.
    assert tus.head(url)["Upload-Offset"] == str(3 * MiB)
    assert temp_objects(fs_storage) == [TusUpload.objects.get().tail_key]
    assert tus.patch(url, 3 * MiB, DATA[3 * MiB :]).status_code == 204
    assert stored_bytes(fs_storage, upload_id(url)) == DATA
    assert len(stored_events()) == 1


def test_a_body_with_a_checksum_records_nothing_before_it_matches(tus, tus_user, fs_storage):
    url = path_of(tus.create(len(DATA)))
    check = parse_checksum(checksum("sha1", DATA))

    with pytest.raises(ServerDied):
        append(tus_user, url, 0, Body(DATA, 7 * MiB, ServerDied), len(DATA), checksum=check)

    assert tus.head(url)["Upload-Offset"] == "0"
    assert TusUpload.objects.get().tail_key == ""


@pytest.mark.s3
def test_on_s3_a_whole_upload_keeps_parts_of_the_largest_size(tus, s3_storage, settings):
    # A multipart upload in progress is no object: S3 cannot report a part as it grows.
    settings.PORTAL_CHUNK_SIZE = settings.PORTAL_CHUNK_SIZE_MIN = 5 * MiB
    settings.PORTAL_CHUNK_SIZE_MAX = 5 * MiB
    data = DATA + DATA[: 3 * MiB]
    url = path_of(tus.create(len(data)))

    assert tus.patch(url, 0, data).status_code == 204

    assert list(
        UploadPart.objects.values_list("size_bytes", flat=True).order_by("part_number")
    ) == [
        5 * MiB,
        5 * MiB,
        1 * MiB,
    ]
    assert stored_bytes(s3_storage, upload_id(url)) == data
