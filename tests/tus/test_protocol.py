"""tus 1.0.0 over Django's test client: core, creation, checksum, concatenation, termination."""

import hashlib
import io
import os
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django.utils.http import parse_http_date

from portal.exceptions import Conflict
from portal.models import TusUpload, UploadFile, UploadPart, UploadSession
from portal.services.cleanup import sweep_orphan_storage_objects
from portal.views.tus import parse_checksum
from tests.api.conftest import temp_objects
from tests.tus.conftest import (
    TusClient,
    checksum,
    metadata,
    path_of,
    stored_bytes,
    stored_events,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("small_limits")]

DATA = bytes(range(65, 65 + 26)) * 2  # 52 bytes: six parts of 8 and a last one of 4


def test_options_advertises_version_extensions_and_algorithms(client):
    response = client.options("/uploads/tus/")
    assert response.status_code == 204
    assert response["Tus-Version"] == "1.0.0"
    extensions = set(response["Tus-Extension"].split(","))
    assert extensions == {
        "creation",
        "creation-with-upload",
        "termination",
        "expiration",
        "checksum",
        "concatenation",
    }
    assert response["Tus-Checksum-Algorithm"] == "sha1,sha256"
    assert response["Tus-Max-Size"] == "1024"


def test_upload_in_patches_of_any_size_maps_offsets_to_parts(tus, fs_storage):
    created = tus.create(len(DATA))
    assert created.status_code == 201, created.content
    url = path_of(created)
    assert created["Upload-Offset"] == "0"
    offset = 0
    for size in (3, 11, 1, 16, 13):  # never on a part boundary until the end
        response = tus.patch(url, offset, DATA[offset : offset + size])
        assert response.status_code == 204, response.content
        offset += size
        assert int(response["Upload-Offset"]) == offset
        assert int(tus.head(url)["Upload-Offset"]) == offset
        session = UploadSession.objects.get(pk=url.rsplit("/", 1)[1])
        assert session.completed_parts == offset // 8
        # Exactly the parts plus one tail object hold the bytes: nothing else is kept.
        assert len(temp_objects(fs_storage)) == offset // 8 + (1 if offset % 8 else 0)
    last = tus.patch(url, offset, DATA[offset:])
    assert last.status_code == 204
    assert last["Upload-Offset"] == str(len(DATA))
    session_id = url.rsplit("/", 1)[1]
    assert stored_bytes(fs_storage, session_id) == DATA
    assert UploadSession.objects.get(pk=session_id).status == "complete"
    assert UploadPart.objects.filter(session_id=session_id).count() == 7
    [event] = stored_events()
    assert event.payload["file"]["sha256"] == hashlib.sha256(DATA).hexdigest()
    assert event.payload["file"]["filename"] == "data.bin"
    assert event.payload["file"]["content_type"] == "text/plain"
    assert TusUpload.objects.get(session_id=session_id).tail_key == ""
    head = tus.head(url)
    assert head.status_code == 200
    assert head["Upload-Offset"] == head["Upload-Length"] == str(len(DATA))


def test_one_patch_of_the_whole_upload_hands_finalize_its_sha256(tus, storage, monkeypatch):
    assemble, seen = type(storage).assemble_final, []

    def spy(self, *args, sha256=""):
        seen.append(sha256)
        return assemble(self, *args, sha256=sha256)

    monkeypatch.setattr(type(storage), "assemble_final", spy)
    data = DATA * 3  # sent whole, and in twenty small PATCHes of parts of 8
    whole = path_of(tus.create(len(data)))
    tus.patch(whole, 0, data)
    resumed = path_of(tus.create(len(data)))
    tus.patch(resumed, 0, data[:20])
    tus.patch(resumed, 20, data[20:])

    # The whole PATCH hashed the file on the way (as its one part on the filesystem,
    # beside its three parts on S3); the resumed one's file was hashed by the adapter.
    assert seen == [hashlib.sha256(data).hexdigest(), ""]
    assert [e.payload["file"]["sha256"] for e in stored_events()] == [seen[0]] * 2
    parts = [
        UploadPart.objects.filter(session_id=path.rsplit("/", 1)[1]) for path in (whole, resumed)
    ]
    assert [p.count() for p in parts] == [1 if storage.reports_written else 3, 20]
    assert stored_bytes(storage, whole.rsplit("/", 1)[1]) == data


def test_a_body_of_the_whole_upload_gets_one_part_or_parts_of_the_largest_size(tus, storage):
    data = DATA * 3
    url = path_of(tus.create(len(data)))

    assert tus.patch(url, 0, data).status_code == 204

    session = UploadSession.objects.get(pk=url.rsplit("/", 1)[1])
    sizes = UploadPart.objects.filter(session=session).order_by("part_number")
    if storage.reports_written:  # the filesystem: one part, linked as the final file
        assert (session.chunk_size_bytes, session.total_parts) == (len(data), 1)
        assert [part.size_bytes for part in sizes] == [len(data)]
    else:  # S3: parts of PORTAL_CHUNK_SIZE_MAX
        assert (session.chunk_size_bytes, session.total_parts) == (64, 3)
        assert [part.size_bytes for part in sizes] == [64, 64, 28]
    assert stored_bytes(storage, session.pk) == data


def test_a_small_upload_in_one_patch_costs_a_bounded_number_of_statements(
    tus, fs_storage, django_assert_max_num_queries
):
    # The per-file cost of many small files is mostly statements (PEP 0024, "Small
    # files"): each one the hot path gains shows up here. Counted inside the test's
    # transaction, where each atomic block is a savepoint.
    data = DATA[:6]
    tus.create(len(data))  # the token's first use is recorded (once a minute)
    with django_assert_max_num_queries(7):  # token; policy; file, session, tus row
        url = path_of(tus.create(len(data)))
    # token, session; the part; finalize (elsewhere the event's key is read first)
    with django_assert_max_num_queries(17 if connection.vendor == "postgresql" else 18):
        assert tus.patch(url, 0, data).status_code == 204
    assert len(stored_events()) == 1


def test_a_body_that_fits_one_part_leaves_the_parts_as_they_are(tus, fs_storage):
    data = DATA[:6]  # one part of the default size of 8: larger parts save nothing
    url = path_of(tus.create(len(data)))

    assert tus.patch(url, 0, data).status_code == 204

    session = UploadSession.objects.get(pk=url.rsplit("/", 1)[1])
    assert (session.chunk_size_bytes, session.total_parts) == (8, 1)
    assert stored_bytes(fs_storage, session.pk) == data


def test_a_part_cut_for_the_size_before_widening_is_refused_and_discarded(
    tus, tus_user, fs_storage
):
    # The race of two first PATCHes: one widens the parts while the other, which read
    # the session before, has cut a part of the old size. Its count must fail.
    from portal.services import tus as tus_service
    from portal.services import tus_tails
    from portal.services.chunks import accept_part

    data = DATA * 3
    url = path_of(tus.create(len(data)))
    session_id = url.rsplit("/", 1)[1]
    stale = UploadSession.objects.get(pk=session_id)
    tus_service.append(  # the whole upload, cut off after 52 bytes: widened, then a tail
        user=tus_user,
        upload_id=session_id,
        offset=0,
        stream=BreaksAfter(data, good=len(DATA), error=ConnectionResetError()),
        content_length=len(data),
    )
    stored = fs_storage.write_temp_part(stale.pk, 1, io.BytesIO(data[:8]), max_bytes=8)

    with pytest.raises(Conflict):
        accept_part(stale, 1, stored, storage=fs_storage, now=timezone.now())

    assert not UploadPart.objects.filter(session_id=session_id).exists()
    assert stored.key not in temp_objects(fs_storage)
    # Nor can a short piece of the old size replace the tail (built on that same tail).
    tail = TusUpload.objects.get(session_id=session_id)
    short = fs_storage.write_temp_part(stale.pk, 1, io.BytesIO(data[:3]), max_bytes=8)
    with pytest.raises(Conflict):
        tus_tails.commit_piece(
            stale, tail, 1, short, base=tail.tail_key, storage=fs_storage, now=timezone.now()
        )
    assert TusUpload.objects.get(session_id=session_id).tail_size == len(DATA)
    assert tus.head(url)["Upload-Offset"] == str(len(DATA))


def test_creation_with_upload_and_metadata_echo(tus, fs_storage):
    raw = metadata(filename="notes.txt", filetype="text/plain", retention_class="general")
    created = tus.create(len(DATA), body=DATA[:20], **{"Upload-Metadata": raw})
    assert created.status_code == 201
    assert created["Upload-Offset"] == "20"
    head = tus.head(path_of(created))
    assert head["Upload-Metadata"] == raw
    assert head["Cache-Control"] == "no-store"
    assert UploadFile.objects.get().original_filename == "notes.txt"


def test_retention_class_metadata_sets_the_files_class_and_an_unknown_one_is_400(tus, fs_storage):
    financial = tus.create(8, **{"Upload-Metadata": metadata(retention_class="financial")})
    unknown = tus.create(8, **{"Upload-Metadata": metadata(retention_class="forever")})

    assert financial.status_code == 201
    assert UploadFile.objects.get().retention_policy.code == "financial"
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "invalid_retention_class"
    assert UploadFile.objects.count() == 1


def test_wrong_offset_is_409_and_stores_nothing(tus, fs_storage):
    url = path_of(tus.create(len(DATA)))
    tus.patch(url, 0, DATA[:5])
    before = temp_objects(fs_storage)
    response = tus.patch(url, 3, DATA[3:12])
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "offset_mismatch"
    assert temp_objects(fs_storage) == before
    assert tus.head(url)["Upload-Offset"] == "5"


@pytest.mark.parametrize("algorithm", ["sha1", "sha256"])
def test_checksum_matches_then_counts(tus, fs_storage, algorithm):
    url = path_of(tus.create(len(DATA)))
    piece = DATA[:19]
    response = tus.patch(url, 0, piece, **{"Upload-Checksum": checksum(algorithm, piece)})
    assert response.status_code == 204
    assert response["Upload-Offset"] == "19"


@pytest.mark.parametrize("algorithm", ["sha1", "sha256"])
def test_checksum_mismatch_is_460_and_nothing_is_stored(tus, fs_storage, algorithm):
    url = path_of(tus.create(len(DATA)))
    tus.patch(url, 0, DATA[:5])
    before = temp_objects(fs_storage)
    piece = DATA[5:30]  # would complete two parts and leave a new tail
    response = tus.patch(url, 5, piece, **{"Upload-Checksum": checksum(algorithm, b"other")})
    assert response.status_code == 460
    assert response.json()["error"]["code"] == "checksum_mismatch"
    assert temp_objects(fs_storage) == before
    assert tus.head(url)["Upload-Offset"] == "5"
    assert UploadPart.objects.count() == 0


def test_unknown_checksum_algorithm_is_400(tus, fs_storage):
    url = path_of(tus.create(len(DATA)))
    response = tus.patch(url, 0, DATA[:4], **{"Upload-Checksum": "md5 AAAA"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unsupported_checksum_algorithm"
    assert temp_objects(fs_storage) == []


def test_body_past_upload_length_is_413_and_leaves_no_object(tus, fs_storage):
    url = path_of(tus.create(10))
    response = tus.patch(url, 0, DATA[:11])
    assert response.status_code == 413
    assert temp_objects(fs_storage) == []


def test_limits_and_headers_of_the_json_api_apply(tus, fs_storage):
    assert tus.create(2048).status_code == 413
    assert tus.create(None).status_code == 400
    no_version = tus.request("POST", "/uploads/tus/", **{"Upload-Length": "5", "Tus-Resumable": ""})
    assert no_version.status_code == 412
    assert no_version["Tus-Version"] == "1.0.0"
    anonymous = TusClient(None).create(5)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "missing_token"
    url = path_of(tus.create(len(DATA)))
    wrong_type = tus.request("PATCH", url, b"abc", "text/plain", **{"Upload-Offset": "0"})
    assert wrong_type.status_code == 415
    assert tus.request("GET", url).status_code == 405
    bad_metadata = tus.create(5, **{"Upload-Metadata": "filename ***"})
    assert bad_metadata.status_code == 400


def test_other_users_and_json_sessions_are_not_found(tus, fs_storage, django_user_model):
    from portal.services.tokens import create_api_token

    url = path_of(tus.create(len(DATA)))
    stranger = TusClient(
        create_api_token(user=django_user_model.objects.create(username="x")).plaintext
    )
    assert stranger.head(url).status_code == 404
    assert stranger.patch(url, 0, b"abc").status_code == 404
    assert tus.head("/uploads/tus/not-a-uuid").status_code == 404


def test_upload_expires_slides_with_activity(tus, fs_storage, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    created = tus.create(len(DATA))
    first = parse_http_date(created["Upload-Expires"])
    time_machine.shift(timedelta(hours=3))
    patched = tus.patch(path_of(created), 0, DATA[:3])  # a tail only: still activity
    assert parse_http_date(patched["Upload-Expires"]) - first == 3 * 3600
    time_machine.shift(timedelta(hours=25))
    gone = tus.patch(path_of(created), 3, DATA[3:6])
    assert gone.status_code == 410
    assert gone.json()["error"]["code"] == "session_expired"
    assert tus.head(path_of(created)).status_code == 410


def test_termination_aborts_and_removes_the_tail(tus, fs_storage):
    url = path_of(tus.create(len(DATA)))
    tus.patch(url, 0, DATA[:13])
    assert len(temp_objects(fs_storage)) == 2
    assert tus.delete(url).status_code == 204
    assert UploadSession.objects.get().status == "aborted"
    # The part is cleanup's (its row is there); the tail went at once.
    [part] = UploadPart.objects.all()
    assert temp_objects(fs_storage) == [part.temp_storage_key]
    assert tus.head(url).status_code == 410
    assert tus.patch(url, 13, DATA[13:20]).status_code == 410


def test_stale_tail_pointer_is_ignored_and_replaced(tus, fs_storage):
    """A crash after a part was counted but before its tail pointer was cleared."""
    url = path_of(tus.create(len(DATA)))
    tus.patch(url, 0, DATA[:5])
    stale = TusUpload.objects.get().tail_key
    tus.patch(url, 5, DATA[5:8])  # completes part 1
    TusUpload.objects.update(tail_key=stale, tail_size=5, tail_part_number=1)
    assert tus.head(url)["Upload-Offset"] == "8"
    assert tus.patch(url, 8, DATA[8:]).status_code == 204
    session_id = url.rsplit("/", 1)[1]
    assert stored_bytes(fs_storage, session_id) == DATA


def test_concatenation_of_partial_uploads(tus, fs_storage):
    pieces = [DATA[:21], DATA[21:30], DATA[30:]]
    urls = []
    for piece in pieces:
        created = tus.create(len(piece), **{"Upload-Concat": "partial"})
        assert created["Upload-Concat"] == "partial"
        urls.append(path_of(created))
    # Out of order and in pieces, as parallel clients send them.
    for url, piece in reversed(list(zip(urls, pieces, strict=True))):
        assert tus.patch(url, 0, piece[:5]).status_code == 204
        assert tus.patch(url, 5, piece[5:]).status_code == 204
    assert stored_events() == []  # partials are never files on their own
    final = tus.create(
        None,
        **{
            "Upload-Concat": "final;" + " ".join(f"http://testserver{u}" for u in urls),
            "Upload-Metadata": metadata(filename="joined.bin"),
        },
    )
    assert final.status_code == 201, final.content
    assert final["Upload-Offset"] == final["Upload-Length"] == str(len(DATA))
    session_id = path_of(final).rsplit("/", 1)[1]
    assert stored_bytes(fs_storage, session_id) == DATA
    [event] = stored_events()
    assert event.payload["file"]["filename"] == "joined.bin"
    assert UploadSession.objects.count() == 1  # the emptied partials are gone
    assert tus.head(urls[0]).status_code == 404
    refused = tus.patch(path_of(final), len(DATA), b"x")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "final_upload"


def test_concatenation_refuses_incomplete_partials(tus, fs_storage):
    url = path_of(tus.create(10, **{"Upload-Concat": "partial"}))
    tus.patch(url, 0, DATA[:4])
    plain = path_of(tus.create(4))
    for names, code in (([url], "partial_incomplete"), ([plain], "invalid_concat")):
        response = tus.create(None, **{"Upload-Concat": "final;" + " ".join(names)})
        assert response.status_code == 400
        assert response.json()["error"]["code"] == code
    assert UploadSession.objects.count() == 2


def test_leftover_tail_has_the_part_key_shape_and_the_sweep_removes_it(tus, fs_storage):
    """A tail is a temp part object of its session, so the storage sweep owns it."""
    url = path_of(tus.create(len(DATA)))
    tus.patch(url, 0, DATA[:5])
    session_id = url.rsplit("/", 1)[1]
    tail = TusUpload.objects.get().tail_key
    assert re.fullmatch(rf"tmp/{session_id[-2:]}/{session_id}-000001-[0-9a-f]{{32}}\.part", tail)
    # While the session is active, the sweep keeps the tail however old it is.
    sweep_orphan_storage_objects(now=timezone.now() + timedelta(days=1))
    assert temp_objects(fs_storage) == [tail]
    # Left behind on purpose, as a crash between abort and its delete would leave it.
    UploadSession.objects.update(status="aborted", finished_at=timezone.now())
    sweep_orphan_storage_objects(now=timezone.now() + timedelta(days=1))
    assert temp_objects(fs_storage) == []


def test_termination_foreign_object_beside_the_tail_survives(tus, fs_storage, storage_root):
    url = path_of(tus.create(len(DATA)))
    tus.patch(url, 0, DATA[:5])
    tail = TusUpload.objects.get().tail_key
    foreign = storage_root / tail.rsplit("/", 1)[0] / "operator-backup.tar"
    foreign.write_bytes(b"keep")
    assert tus.delete(url).status_code == 204
    assert tail not in temp_objects(fs_storage)
    assert foreign.read_bytes() == b"keep"


def test_creation_with_a_wrong_body_type_is_415_and_creates_nothing(tus, fs_storage):
    response = tus.request(
        "POST", "/uploads/tus/", b"abc", "text/plain", **{"Upload-Length": str(len(DATA))}
    )
    assert response.status_code == 415
    assert UploadSession.objects.count() == 0
    empty = tus.request("POST", "/uploads/tus/", b"", "text/plain", **{"Upload-Length": "5"})
    assert empty.status_code == 201  # an empty body is plain creation, whatever its type


class Stalled(Exception):
    """What a timed body reader raises when the client stops sending."""


class BreaksAfter:
    """A body stream that raises ``error`` after ``good`` bytes."""

    def __init__(self, data: bytes, good: int, error: Exception):
        self.data, self.good, self.sent, self.error = data, good, 0, error

    def read(self, size=-1):
        if self.sent >= self.good:
            raise self.error
        piece = self.data[self.sent : min(self.good, self.sent + (size if size > 0 else 1 << 30))]
        self.sent += len(piece)
        return piece


@pytest.mark.parametrize("with_checksum", [False, True])
def test_a_body_that_fails_leaves_no_uncounted_object(tus, tus_user, fs_storage, with_checksum):
    from portal.services import tus as tus_service

    url = path_of(tus.create(len(DATA)))
    upload_id = url.rsplit("/", 1)[1]
    tus.patch(url, 0, DATA[:5])
    check = parse_checksum(checksum("sha1", DATA[5:40])) if with_checksum else None
    with pytest.raises(Stalled):
        tus_service.append(
            user=tus_user,
            upload_id=upload_id,
            offset=5,
            stream=BreaksAfter(DATA[5:40], good=20, error=Stalled()),
            content_length=35,
            checksum=check,
        )
    tail = TusUpload.objects.get()
    keys = {part.temp_storage_key for part in UploadPart.objects.all()} | {tail.tail_key} - {""}
    assert set(temp_objects(fs_storage)) == keys  # every object is a counted part or the tail
    offset = int(tus.head(url)["Upload-Offset"])
    # Without a checksum whole parts that arrived count; with one nothing does.
    assert offset == (5 if with_checksum else 24)
    assert tus.patch(url, offset, DATA[offset:]).status_code == 204
    assert stored_bytes(fs_storage, upload_id) == DATA


def test_head_finalizes_an_upload_whose_finalize_failed(tus, fs_storage, monkeypatch):
    from portal.exceptions import StorageUnavailable

    url = path_of(tus.create(len(DATA)))
    assemble = type(fs_storage).assemble_final

    def down(*args, **kwargs):
        raise StorageUnavailable("storage went away")

    monkeypatch.setattr(type(fs_storage), "assemble_final", down)
    failed = tus.patch(url, 0, DATA)
    assert failed.status_code == 503
    assert failed.json()["error"]["code"] == "storage_unavailable"
    assert stored_events() == []
    monkeypatch.setattr(type(fs_storage), "assemble_final", assemble)
    head = tus.head(url)  # the client's resume
    assert head["Upload-Offset"] == str(len(DATA))
    assert stored_bytes(fs_storage, url.rsplit("/", 1)[1]) == DATA
    assert len(stored_events()) == 1


def test_a_client_that_hangs_up_keeps_what_arrived(tus, tus_user, fs_storage):
    from portal.services import tus as tus_service

    url = path_of(tus.create(len(DATA)))
    state = tus_service.append(
        user=tus_user,
        upload_id=url.rsplit("/", 1)[1],
        offset=0,
        stream=BreaksAfter(DATA, good=19, error=ConnectionResetError()),
        content_length=len(DATA),
    )
    # A body of the whole upload is one part on the filesystem: what arrived is its
    # tail, durable and resumable.
    assert state.offset == 19
    assert tus.head(url)["Upload-Offset"] == "19"
    assert len(temp_objects(fs_storage)) == 1
    assert UploadSession.objects.get(pk=url.rsplit("/", 1)[1]).chunk_size_bytes == len(DATA)
    assert tus.patch(url, 19, DATA[19:]).status_code == 204
    assert stored_bytes(fs_storage, url.rsplit("/", 1)[1]) == DATA


@pytest.mark.s3
def test_tails_and_concatenation_on_s3(tus, s3_storage, settings):
    """On S3: 5 MiB parts, tails as objects, partials whose parts S3 cannot copy."""
    MiB = 1024 * 1024
    settings.PORTAL_CHUNK_SIZE = settings.PORTAL_CHUNK_SIZE_MIN = 5 * MiB
    settings.PORTAL_MAX_FILE_SIZE = settings.PORTAL_CHUNK_SIZE_MAX = 64 * MiB
    data = os.urandom(12 * MiB + 3)
    url = path_of(tus.create(len(data)))
    for start, end in ((0, 3 * MiB), (3 * MiB, 9 * MiB), (9 * MiB, len(data))):
        assert tus.patch(url, start, data[start:end]).status_code == 204
    assert stored_bytes(s3_storage, url.rsplit("/", 1)[1]) == data
    partials = []
    for piece in (data[: 6 * MiB + 1], data[6 * MiB + 1 :]):
        partial = path_of(tus.create(len(piece), **{"Upload-Concat": "partial"}))
        assert tus.patch(partial, 0, piece).status_code == 204
        partials.append(partial)
    final = tus.create(None, **{"Upload-Concat": "final;" + " ".join(partials)})
    assert final.status_code == 201, final.content
    assert stored_bytes(s3_storage, path_of(final).rsplit("/", 1)[1]) == data
    assert len(stored_events()) == 2


def test_a_missing_tail_sends_the_client_back_to_the_counted_parts(tus, fs_storage):
    url = path_of(tus.create(len(DATA)))
    tus.patch(url, 0, DATA[:13])  # part 1 and a tail of 5
    fs_storage.delete_many([TusUpload.objects.get().tail_key])  # e.g. an operator's rm
    lost = tus.patch(url, 13, DATA[13:20])
    assert lost.status_code == 409
    assert lost.json()["error"]["offset"] == 8
    assert tus.head(url)["Upload-Offset"] == "8"
    assert tus.patch(url, 8, DATA[8:]).status_code == 204
    assert stored_bytes(fs_storage, url.rsplit("/", 1)[1]) == DATA
