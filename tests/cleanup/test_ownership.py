"""Cleanup deletes only what it can prove is its own (SPEC §6a, issue 11).

One test per reproduction of the issue, on both adapters where storage is
involved and through the HTTP API where a client is involved.
"""

import io
import json
import os
from datetime import timedelta

import pytest
from django.core import checks
from django.core.management import call_command
from django.test import Client, override_settings
from django.utils import timezone

from portal.exceptions import ObjectMissing
from portal.models import CleanupRun, UploadFile, UploadPart, UploadSession, new_id
from portal.services.cleanup import run_cleanup, sweep_orphan_storage_objects
from portal.services.tokens import create_api_token
from portal.storage import keys
from tests.api.conftest import SMALL_LIMITS, UploadClient, chunks_of, sha256
from tests.cleanup.helpers import GRACE, temp_keys
from tests.factories import make_session, make_user

pytestmark = pytest.mark.django_db
Status = UploadSession.Status


def plant(storage, key: str, body: bytes = b"not the portal's") -> str:
    """An object the portal did not write, put straight into storage."""
    if storage.backend == "filesystem":
        path = storage.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    else:
        storage.client.put_object(Bucket=storage.bucket, Key=key, Body=body)
    return key


def present(storage, key: str) -> bool:
    try:
        storage.open(key).close()
    except ObjectMissing:
        return False
    return True


def near_misses(storage) -> list[str]:
    """Keys under the temp prefix that look like the portal's parts but are not."""
    session = str(new_id())
    good = keys.temp_part_key(storage.temp_prefix, session, 1)
    name = good.rsplit("/", 1)[1]
    shard = session[-2:]
    other_shard = "00" if shard != "00" else "11"
    found = [
        "tmp/notmine.png",
        "tmp/ab/backup.tar",
        good.upper().replace("TMP/", "tmp/"),  # uppercase hex
        f"tmp/{other_shard}/{name}",  # shard does not match the session id
        good + ".bak",
        good[: -len(".part")],
        good.replace("-000001-", "-000000-"),  # part number 0
        good.replace("-000001-", "-00001-"),  # five digits
        good[: -len("0.part")] + ".part",  # 31 hex digits of suffix
        f"tmp/{shard}/extra/{name}",
        f"tmp/{name}",  # no shard folder
        f"tmp/{session}/000001-{'a' * 32}.part",  # an older layout
        f"tmp/files/{session}/report.bin",  # a final file under a nested prefix
    ]
    if storage.backend == "s3":
        found.append(f"tmp/{shard}/")  # a "folder" marker
    return found


def write_unrecorded_part(storage, session_id, number=1) -> str:
    """A part object whose row was never committed (a crash, or a PUT still running)."""
    return storage.write_temp_part(session_id, number, io.BytesIO(b"part"), max_bytes=4).key


# -- ownership: foreign objects are counted, sampled, logged, never deleted ---------


def test_sweep_foreign_objects_of_every_shape_are_counted_logged_and_kept(storage, log_events):
    foreign = [plant(storage, key) for key in near_misses(storage)]
    orphan = write_unrecorded_part(storage, new_id())
    later = timezone.now() + 2 * GRACE

    report = run_cleanup(trigger="command", now=later)

    assert all(present(storage, key) for key in foreign if not key.endswith("/"))
    assert temp_keys(storage) >= {key for key in foreign if not key.endswith("/")}
    assert not present(storage, orphan)
    sweep = report.counts["orphan_storage_objects"]
    assert (sweep["foreign"], sweep["deleted"]) == (len(foreign), 1)
    assert report.counts["total"]["foreign"] == len(foreign)
    assert CleanupRun.objects.get(pk=report.run_id).counts["orphan_storage_objects"] == sweep
    [logged] = log_events("cleanup.foreign_objects")
    assert logged["count"] == len(foreign) and logged["run_id"] == report.run_id
    assert set(logged["sample"]) <= set(foreign) and logged["sample"]


def test_foreign_sample_is_bounded_and_the_count_exact(fs_storage, log_events):
    for number in range(30):
        plant(fs_storage, f"tmp/backups/{number}.tar")

    result = sweep_orphan_storage_objects(now=timezone.now() + 2 * GRACE, batch_size=7)

    assert (result.foreign, result.deleted, len(result.foreign_sample)) == (30, 0, 20)
    assert log_events("cleanup.foreign_objects")[0]["count"] == 30


@override_settings(PORTAL_CLEANUP_GRACE_MINUTES=0)
def test_command_json_report_shows_foreign_objects_foreign_(fs_storage, capsys):
    # The reproduction: two old files of an operator's under the temp prefix.
    for key in ("tmp/notmine.png", "tmp/ab/backup.tar"):
        plant(fs_storage, key)
        old = (timezone.now() - timedelta(hours=2)).timestamp()
        os.utime(fs_storage.root / key, (old, old))

    call_command("run_cleanup", "--json")

    report = json.loads(capsys.readouterr().out)
    assert report["counts"]["orphan_storage_objects"]["foreign"] == 2
    assert (fs_storage.root / "tmp/notmine.png").is_file()
    assert (fs_storage.root / "tmp/ab/backup.tar").is_file()


def test_foreign_objects_survive_a_dry_run_and_count_the_same(storage):
    foreign = [plant(storage, key) for key in near_misses(storage)]
    later = timezone.now() + 2 * GRACE

    dry = sweep_orphan_storage_objects(now=later, dry_run=True)
    live = sweep_orphan_storage_objects(now=later)

    assert dry.foreign == live.foreign == len(foreign)
    assert (dry.deleted, live.deleted) == (0, 0)


# -- the active-session rule ----------------------------------------------------------


@override_settings(PORTAL_CLEANUP_GRACE_MINUTES=0)
@pytest.mark.parametrize("status", [Status.INIT, Status.IN_PROGRESS])
def test_objects_of_an_active_session_are_kept_whatever_their_age(storage, status):
    session = make_session(status=status)
    unrecorded = write_unrecorded_part(storage, session.pk)
    much_later = timezone.now() + timedelta(hours=23)  # idle, but not yet past the TTL

    report = run_cleanup(trigger="beat", now=much_later)

    assert present(storage, unrecorded)
    assert report.counts["orphan_storage_objects"]["deleted"] == 0
    # Once the session has ended, the same object is the sweep's to delete.
    UploadSession.objects.filter(pk=session.pk).update(
        status=Status.ABORTED, finished_at=much_later
    )
    assert sweep_orphan_storage_objects(now=much_later).deleted == 1
    assert not present(storage, unrecorded)


# -- through the HTTP API -------------------------------------------------------------


@pytest.fixture
def chunk(storage):
    if storage.backend == "s3":
        size = 5 * 1024 * 1024
        with override_settings(PORTAL_CHUNK_SIZE_MIN=size, PORTAL_CHUNK_SIZE=size):
            yield size
    else:
        with override_settings(**SMALL_LIMITS):
            yield SMALL_LIMITS["PORTAL_CHUNK_SIZE"]


@pytest.fixture
def uploader():
    user = make_user("uploader")
    return UploadClient(create_api_token(user=user).plaintext, user=user)


def start(uploader, data: bytes, chunk: int) -> str:
    response = uploader.create(
        original_filename="report.bin",
        content_type="application/octet-stream",
        total_size_bytes=len(data),
        chunk_size_bytes=chunk,
    )
    assert response.status_code == 201, response.json()
    return response.json()["session_id"]


@override_settings(PORTAL_CLEANUP_GRACE_MINUTES=0)
def test_a_sweep_during_a_part_write_keeps_the_object_and_finalize_succeeds(
    storage, chunk, uploader, monkeypatch
):
    # The race: with no grace, a sweep runs between the part's object being
    # written and its row being committed.
    data = os.urandom(chunk + 1)
    session_id = start(uploader, data, chunk)
    write = storage.write_temp_part
    sweeps = []

    def write_then_sweep(*args, **kwargs):
        stored = write(*args, **kwargs)
        sweeps.append(sweep_orphan_storage_objects(now=timezone.now() + timedelta(hours=1)))
        return stored

    monkeypatch.setattr(storage, "write_temp_part", write_then_sweep)
    for number, part in chunks_of(data, chunk).items():
        assert uploader.put_part(session_id, number, part).status_code == 201

    assert [sweep.deleted for sweep in sweeps] == [0, 0]
    response = uploader.finalize(session_id)
    assert response.status_code == 200, response.json()
    assert response.json()["file"]["sha256"] == sha256(data)


def test_finalize_with_a_part_object_missing_answers_409_and_the_resend_repairs_it(
    storage, chunk, uploader, log_events
):
    data = os.urandom(2 * chunk + 1)
    session_id = start(uploader, data, chunk)
    parts = chunks_of(data, chunk)
    for number, part in parts.items():
        uploader.put_part(session_id, number, part)
    lost = UploadPart.objects.get(session_id=session_id, part_number=2)
    storage.delete_many([lost.temp_storage_key])

    response = uploader.finalize(session_id)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "missing_parts"
    assert response.json()["error"]["missing_parts"] == "2"
    [logged] = log_events("part.object_missing")
    assert (logged["part_number"], logged["session_id"]) == (2, session_id)
    status = uploader.status(session_id).json()
    assert status["received_parts"] == "1,3"
    # The same bytes again count as a new part, and finalize then succeeds.
    assert uploader.put_part(session_id, 2, parts[2]).status_code == 201
    done = uploader.finalize(session_id)
    assert done.status_code == 200, done.json()
    assert done.json()["file"]["sha256"] == sha256(data)
    assert UploadSession.objects.get(pk=session_id).bytes_received == len(data)


def test_a_permanent_storage_error_is_not_answered_as_a_retryable_503(storage, chunk, uploader):
    data = os.urandom(chunk)
    session_id = start(uploader, data, chunk)
    uploader.put_part(session_id, 1, data)
    # A row pointing outside the temp prefix: no retry will ever make it readable.
    UploadPart.objects.filter(session_id=session_id).update(temp_storage_key="elsewhere/x.part")

    response = Client().post(
        f"/uploads/sessions/{session_id}/finalize",
        b"",
        content_type="application/json",
        headers={"Authorization": f"Bearer {uploader.token}"},
    )

    assert response.status_code == 500
    assert response.json()["error"]["code"] == "storage_error"
    assert "elsewhere" not in response.content.decode()


@override_settings(PORTAL_TEMP_PREFIX="tmp/", PORTAL_FINAL_PREFIX="tmp/files/")
def test_nested_prefixes_fail_the_check_and_the_sweep_keeps_stored_files_foreign_(
    storage, chunk, uploader
):
    assert "portal.E013" in {message.id for message in checks.run_checks()}
    data = os.urandom(chunk)
    session_id = start(uploader, data, chunk)
    uploader.put_part(session_id, 1, data)
    assert uploader.finalize(session_id).status_code == 200
    stored = UploadFile.objects.get(session__pk=session_id)

    report = run_cleanup(trigger="beat", now=timezone.now() + timedelta(days=2))

    assert present(storage, stored.storage_key)
    assert report.counts["orphan_storage_objects"]["foreign"] == 1
    UploadFile.objects.get(pk=stored.pk, status="stored")
