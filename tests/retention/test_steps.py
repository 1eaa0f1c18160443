"""The retention steps on both adapters, with the clock passed as ``now=``."""

from datetime import timedelta

import pytest

from portal.exceptions import StorageUnavailable
from portal.models import FileDeletion, OutboxEvent, RetentionPolicy, UploadFile, WebhookEndpoint
from portal.services.cleanup_context import StepResult
from portal.services.legal_hold import release_legal_hold, set_legal_hold
from portal.services.retention import delete_expired_files, notify_expiring_files
from portal.storage.base import DeleteResult
from tests.retention.helpers import DAY, NOTICE, NOW, exists, stored_file
from tests.storage.faults import refuse_one_key

pytestmark = pytest.mark.django_db
Status = UploadFile.Status


def events(event_type, file):
    return list(
        OutboxEvent.objects.filter(event_type=event_type, aggregate_id=str(file.pk)).order_by(
            "created_at"
        )
    )


def run_both(now, storage, **options):
    """One cleanup pass of both retention steps, as run_cleanup runs them."""
    return (
        notify_expiring_files(now=now, **options),
        delete_expired_files(now=now, storage=storage, **options),
    )


# -- notices --------------------------------------------------------------------------


def test_a_file_inside_its_notice_window_gets_one_file_expiring(storage):
    # general: 30 days; stored 29 days ago, so it expires in a day: within 48 h notice.
    due = stored_file(storage, stored_at=NOW - 29 * DAY)
    later = stored_file(storage, stored_at=NOW - 20 * DAY)

    assert notify_expiring_files(now=NOW) == StepResult(notified=1)
    assert notify_expiring_files(now=NOW + timedelta(minutes=10)) == StepResult(notified=0)

    due.refresh_from_db()
    later.refresh_from_db()
    assert due.expiring_notified_at == NOW and later.expiring_notified_at is None
    (event,) = events("file.expiring", due)
    assert event.aggregate_type == "upload_file"
    payload = event.payload
    assert payload["expires_at"] == due.expires_at.isoformat()
    assert payload["delete_after"] == (NOW + NOTICE).isoformat()
    assert payload["file"]["id"] == str(due.pk)
    assert payload["file"]["storage"] == {
        "backend": storage.backend,
        "bucket": storage.bucket,
        "key": due.storage_key,
    }
    assert payload["file"]["retention"] == {
        "class": "general",
        "expires_at": due.expires_at.isoformat(),
    }


def test_files_kept_indefinitely_are_never_notified_nor_deleted(storage):
    RetentionPolicy.objects.filter(code="legal").update(retention=None)
    kept = stored_file(storage, code="legal", stored_at=NOW - 3650 * DAY)
    assert kept.expires_at is None

    run_both(NOW, storage)

    kept.refresh_from_db()
    assert kept.status == Status.STORED and kept.expiring_notified_at is None
    assert exists(storage, kept.storage_key)


# -- deletions ------------------------------------------------------------------------


def test_an_expired_file_is_deleted_only_notice_after_its_notice(storage):
    expired = stored_file(storage, stored_at=NOW - 40 * DAY)  # expired ten days ago

    notices, deletions = run_both(NOW, storage)
    assert (notices.notified, deletions.deleted) == (1, 0)

    just_before = NOW + NOTICE - timedelta(seconds=1)
    assert delete_expired_files(now=just_before, storage=storage).deleted == 0
    assert exists(storage, expired.storage_key)

    result = delete_expired_files(now=NOW + NOTICE, storage=storage)

    assert result == StepResult(deleted=1, bytes_reclaimed=expired.size_bytes)
    assert not exists(storage, expired.storage_key)
    expired.refresh_from_db()
    assert (expired.status, expired.deleted_at) == (Status.DELETED, NOW + NOTICE)
    proof = FileDeletion.objects.get(file_id=expired.pk)
    assert proof.reason == "retention_expired"
    assert (proof.storage_key, proof.size_bytes, proof.sha256) == (
        expired.storage_key,
        expired.size_bytes,
        expired.sha256,
    )
    assert (proof.retention_class, proof.retention_period) == ("general", timedelta(days=30))
    assert (proof.stored_at, proof.expires_at, proof.notified_at) == (
        expired.stored_at,
        expired.expires_at,
        NOW,
    )
    (deleted,) = events("file.deleted", expired)
    assert deleted.payload["reason"] == "retention_expired"
    assert deleted.payload["file"]["id"] == str(expired.pk)
    # Again: nothing more to do, no second proof or event.
    assert run_both(NOW + 2 * NOTICE, storage)[1].deleted == 0
    assert FileDeletion.objects.filter(file_id=expired.pk).count() == 1
    assert len(events("file.deleted", expired)) == 1


def test_a_shortened_policy_still_waits_notice_after_the_notice(storage):
    upload = stored_file(storage, stored_at=NOW - 2 * DAY)  # general: 28 days left
    RetentionPolicy.objects.filter(code="general").update(retention=timedelta(hours=1))
    UploadFile.objects.filter(pk=upload.pk).update(expires_at=upload.stored_at + timedelta(hours=1))

    assert run_both(NOW, storage)[1].deleted == 0  # notified now
    assert run_both(NOW + NOTICE - timedelta(minutes=1), storage)[1].deleted == 0
    assert run_both(NOW + NOTICE, storage)[1].deleted == 1


def test_a_held_file_is_never_notified_nor_deleted(storage):
    held = stored_file(storage, stored_at=NOW - 400 * DAY)
    set_legal_hold(file_ids=[held.pk], reason="litigation 2026-17", now=NOW)

    for days in (0, 10, 100):
        notices, deletions = run_both(NOW + days * DAY, storage)
        assert (notices.notified, deletions.deleted) == (0, 0)

    held.refresh_from_db()
    assert held.status == Status.STORED and held.expiring_notified_at is None
    assert exists(storage, held.storage_key)
    assert not events("file.expiring", held)


def test_a_hold_on_a_notified_file_blocks_deletion_and_a_release_notifies_again(storage):
    upload = stored_file(storage, stored_at=NOW - 40 * DAY)
    assert notify_expiring_files(now=NOW).notified == 1
    set_legal_hold(file_ids=[upload.pk], reason="audit", now=NOW + DAY)

    assert run_both(NOW + 10 * DAY, storage)[1].deleted == 0

    released_at = NOW + 20 * DAY
    release_legal_hold(file_ids=[upload.pk], now=released_at)
    notices, deletions = run_both(released_at, storage)
    assert (notices.notified, deletions.deleted) == (1, 0)
    assert len(events("file.expiring", upload)) == 2
    assert run_both(released_at + NOTICE - timedelta(seconds=1), storage)[1].deleted == 0
    assert run_both(released_at + NOTICE, storage)[1].deleted == 1
    assert exists(storage, upload.storage_key) is False


def test_a_released_never_notified_file_past_expiry_is_notified_first(storage):
    upload = stored_file(storage, stored_at=NOW - 400 * DAY)
    set_legal_hold(file_ids=[upload.pk], reason="audit", now=NOW - 300 * DAY)
    release_legal_hold(file_ids=[upload.pk], now=NOW)

    assert run_both(NOW, storage) == (StepResult(notified=1), StepResult())
    assert run_both(NOW + NOTICE, storage)[1].deleted == 1


class RefusingFinalDeletes:
    """A real adapter whose final deletes fail, as a storage outage would."""

    def __init__(self, storage):
        self._storage = storage

    def __getattr__(self, name):
        return getattr(self._storage, name)

    def delete_final(self, key):
        raise StorageUnavailable(f"cannot delete {key}: SlowDown")

    def delete_final_many(self, keys):
        return DeleteResult(errors=dict.fromkeys(keys, "SlowDown"))


def test_a_storage_failure_keeps_the_file_stored_and_the_next_run_retries(storage):
    upload = stored_file(storage, stored_at=NOW - 40 * DAY)
    notify_expiring_files(now=NOW)
    later = NOW + NOTICE

    failed = delete_expired_files(now=later, storage=RefusingFinalDeletes(storage))

    assert (failed.deleted, failed.failed) == (0, 1)
    assert failed.errors[0].item == str(upload.pk)
    upload.refresh_from_db()
    assert upload.status == Status.STORED and upload.retention_claimed_until is None
    assert exists(storage, upload.storage_key)
    assert not FileDeletion.objects.exists() and not events("file.deleted", upload)

    assert delete_expired_files(now=later + timedelta(minutes=1), storage=storage).deleted == 1
    assert not exists(storage, upload.storage_key)


def test_a_key_s3_refuses_keeps_that_file_stored_and_counted_failed(s3_storage):
    refused, *others = [stored_file(s3_storage, stored_at=NOW - 40 * DAY) for _ in range(3)]
    notify_expiring_files(now=NOW)
    refuse_one_key(s3_storage, refused.storage_key)

    result = delete_expired_files(now=NOW + NOTICE, storage=s3_storage)

    assert (result.deleted, result.failed) == (2, 1)
    assert result.errors[0].item == str(refused.pk) and "AccessDenied" in result.errors[0].error
    refused.refresh_from_db()
    assert refused.status == Status.STORED and refused.retention_claimed_until is None
    assert exists(s3_storage, refused.storage_key)
    assert not FileDeletion.objects.filter(file_id=refused.pk).exists()
    assert not events("file.deleted", refused)
    assert all(not exists(s3_storage, f.storage_key) for f in others)
    assert FileDeletion.objects.filter(file_id__in=[f.pk for f in others]).count() == 2


def test_an_already_missing_object_counts_as_deleted(storage):
    upload = stored_file(storage, stored_at=NOW - 40 * DAY)
    notify_expiring_files(now=NOW)
    storage.delete_final(upload.storage_key)

    assert delete_expired_files(now=NOW + NOTICE, storage=storage).deleted == 1
    assert FileDeletion.objects.filter(file_id=upload.pk).exists()


def test_dry_run_counts_what_a_live_run_does_and_changes_nothing(storage):
    notified = stored_file(storage, stored_at=NOW - 40 * DAY)
    notify_expiring_files(now=NOW - NOTICE)
    stored_file(storage, stored_at=NOW - 29 * DAY)
    before = list(UploadFile.objects.order_by("pk").values())

    dry = run_both(NOW, storage, dry_run=True)

    assert dry == (
        StepResult(notified=1, dry_run=True),
        StepResult(deleted=1, bytes_reclaimed=notified.size_bytes, dry_run=True),
    )
    assert list(UploadFile.objects.order_by("pk").values()) == before
    assert exists(storage, notified.storage_key)
    assert OutboxEvent.objects.filter(event_type="file.deleted").count() == 0
    live = run_both(NOW, storage)
    assert (live[0].notified, live[1].deleted) == (1, 1)


def test_deletion_keeps_a_foreign_object_beside_the_expired_files(storage, tmp_path):
    files = [stored_file(storage, stored_at=NOW - 40 * DAY) for _ in range(3)]
    # An operator's backup and a host's file under the final prefix, beside the portal's own.
    foreign = [
        f"{storage.final_prefix}backup-2025.tar",
        f"{files[0].storage_key.rsplit('/', 1)[0]}/notes.txt",
    ]
    for key in foreign:
        _plant(storage, key, tmp_path)
    notify_expiring_files(now=NOW)

    assert delete_expired_files(now=NOW + NOTICE, storage=storage).deleted == 3

    assert all(not exists(storage, f.storage_key) for f in files)
    assert all(exists(storage, key) for key in foreign)


def _plant(storage, key, tmp_path):
    """Write an object the portal did not make, with the backend's own tools."""
    if storage.backend == "filesystem":
        path = storage.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not the portal's")
    else:
        storage.client.put_object(Bucket=storage.bucket, Key=key, Body=b"not the portal's")


def test_events_reach_only_endpoints_that_subscribe_to_them(storage):
    deleted_only = WebhookEndpoint.objects.create(
        url="http://127.0.0.1:9/hook", secret="s", event_types=["file.deleted"]
    )
    everything = WebhookEndpoint.objects.create(url="http://127.0.0.1:9/all", secret="s")
    upload = stored_file(storage, stored_at=NOW - 40 * DAY)

    run_both(NOW, storage)
    run_both(NOW + NOTICE, storage)

    (expiring,) = events("file.expiring", upload)
    (deleted,) = events("file.deleted", upload)
    assert {d.endpoint_id for d in expiring.deliveries.all()} == {everything.pk}
    assert {d.endpoint_id for d in deleted.deliveries.all()} == {everything.pk, deleted_only.pk}


def test_batches_cover_every_due_file(storage):
    uploads = [stored_file(storage, stored_at=NOW - 40 * DAY) for _ in range(7)]

    assert notify_expiring_files(now=NOW, batch_size=2).notified == 7
    result = delete_expired_files(now=NOW + NOTICE, storage=storage, batch_size=2)

    assert result.deleted == 7
    assert FileDeletion.objects.count() == 7
    assert all(not exists(storage, u.storage_key) for u in uploads)
